# shellcheck shell=bash
# Helpers sourced by the launch scripts (not run on its own).

# Prints an error and a pointer to --help on stderr, then exits with status 2 (bad usage).
die() {
  echo "error: $*" >&2
  echo "run '$0 --help' for usage" >&2
  exit 2
}

# Prints the words as one command line any POSIX shell splits back into the same words:
# plain words as they are, the rest in single quotes. Used both for what runs on a remote
# shell (gcloud ssh --command, srun) and for --dry_run output a user can paste.
shell_words() {
  local word out=""
  for word in "$@"; do
    if [[ "$word" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
      out+="$word "
    else
      out+="'${word//\'/\'\\\'\'}' "
    fi
  done
  printf '%s' "${out% }"
}
