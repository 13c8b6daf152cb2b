# scripts/run.sh's arguments, sourced by it (and by tests/test_run_script.py, which runs this same code):
#   CLIP [OUT_DIR] [options for `python -m engine reconstruct`]
# parse_run_args ROOT ARGS... sets clip (absolute), out (absolute; default ROOT/out/<clip's name>) and the array
# opts (the options, passed on as given); returns 2 after a usage line when CLIP is missing or looks like an option.
# An argument starting with "-" is never the output folder: `run.sh CLIP --steps 1` writes to the default folder
# (a folder whose name starts with "-" can be given as ./-name).
parse_run_args() {
  local root=$1
  shift
  local usage="usage: scripts/run.sh CLIP [OUT_DIR] [reconstruct options, e.g. --steps 1]"
  if [ $# -lt 1 ] || [ -z "$1" ] || [[ $1 == -* ]]; then
    echo "$usage" >&2
    return 2
  fi
  clip=$(realpath -m -- "$1")  # paths are relative to where the script is called from
  shift
  out="$root/out/$(basename -- "${clip%.*}")"
  if [ $# -ge 1 ] && [[ $1 != -* ]]; then
    out=$1
    shift
  fi
  out=$(realpath -m -- "$out")
  opts=("$@")
}
