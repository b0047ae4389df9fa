# Sourced by demo.sh and test.sh: makes .venv, installs the package with the given extras, and the
# system tools they need (graphviz's `dot`; chromium for browser tests) when missing and permitted.
# Set LLMTASKGRAPH_NO_APT=1 to never call apt-get; LLMTASKGRAPH_VENV to use another venv folder.
set -euo pipefail
EXTRAS="${1:-anthropic}"
WANT_APT="${2:-graphviz}"
VENV="${LLMTASKGRAPH_VENV:-.venv}"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[bootstrap] creating virtual environment in $VENV"
  "$PY" -m venv "$VENV"
fi
# Reinstall only when pyproject.toml or the extras change, so repeated runs start fast.
STAMP="$VENV/.llmtaskgraph-$(echo "$EXTRAS" | tr ',' '-')-$( (cat pyproject.toml; echo "$EXTRAS") | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ]; then
  echo "[bootstrap] installing llmtaskgraph[$EXTRAS] into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -U pip 2>&1 | grep -v '^WARNING: Location' || true
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[$EXTRAS]" 2>&1 | grep -v '^WARNING: Location' || true
  "$VENV/bin/python" -c "import llmtaskgraph" && touch "$STAMP"
fi

apt_install() {  # apt_install COMMAND PACKAGE...: install PACKAGE when COMMAND is missing and we may
  local cmd="$1"; shift
  command -v "$cmd" >/dev/null 2>&1 && return 0
  if [ "${LLMTASKGRAPH_NO_APT:-0}" = "1" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "[bootstrap] '$cmd' not found and apt-get not permitted; install: $*" >&2; return 0
  fi
  local sudo=""
  if [ "$(id -u)" != "0" ]; then
    if sudo -n true 2>/dev/null; then sudo="sudo -n"; else
      echo "[bootstrap] '$cmd' not found; run: sudo apt-get install -y $*" >&2; return 0; fi
  fi
  echo "[bootstrap] installing $* with apt-get"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
for want in $(echo "$WANT_APT" | tr ',' ' '); do
  case "$want" in
    graphviz) apt_install dot graphviz ;;
    chromium) apt_install chromium chromium fonts-liberation ;;
  esac
done
export PATH="$PWD/$VENV/bin:$PATH"
