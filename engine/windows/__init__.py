"""The sliding window: its schedule, the window predictions every model writes, and map resizing."""
