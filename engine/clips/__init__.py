"""Reading clips: videos and image sequences, decoded to RGB frames."""
