# Sourced by scripts/up and scripts/test: make .venv with a Python >= 3.11 and install into it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

find_python() {
  for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "truthvault needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

# ensure_venv EXTRA: install truthvault (with EXTRA, e.g. "[test]") into .venv, unless the
# last install there was of this pyproject.toml with this extra; a plain install is
# satisfied by one with an extra. The stamp lives in .venv, so a new .venv installs afresh.
ensure_venv() {
  local extra="$1" stamp=.venv/.truthvault-installed digest
  if [ ! -x .venv/bin/python ]; then
    "$(find_python)" -m venv .venv
  fi
  digest="$(cksum < pyproject.toml | tr ' ' -)"
  if [ -f "$stamp" ]; then
    local had_digest had_extra
    read -r had_digest had_extra < "$stamp" || true
    if [ "$had_digest" = "$digest" ] && { [ -z "$extra" ] || [ "$had_extra" = "$extra" ]; }; then
      return 0
    fi
  fi
  echo "installing truthvault${extra:+ and its ${extra//[\[\]]/} dependencies} into .venv ..."
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".$extra"
  echo "$digest $extra" > "$stamp"
}
