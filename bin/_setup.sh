# Sourced by bin/demo and bin/test: make .venv with everything the project needs.
# Needs only Python 3.11 and the package index; reinstalls when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python=${PYTHON:-}
if [ -z "$python" ]; then
  python=$(command -v python3.11 || command -v python3 || true)
fi
if [ -z "$python" ] || ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=".venv/.installed-$("$python" -c 'import hashlib,sys; print(hashlib.sha256(open("pyproject.toml","rb").read()).hexdigest()[:16])')"
if [ ! -f "$stamp" ]; then
  echo "installing dependencies into .venv ..." >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi

# The tuning guide's own SDK judges the Gemini API facade, unmodified
# (tests/e2e/test_guide_tutorial.py runs tests/e2e/guide_tutorial.py with it). It pins
# google-ai-generativelanguage 0.6.15, which needs protobuf<6 while the project runs
# protobuf 7, so it has a venv of its own, .venv-judge/, made once per pin.
judge_pin="google-generativeai==0.8.6"
judge_stamp=".venv-judge/.installed-${judge_pin//[^A-Za-z0-9.-]/_}"
if [ ! -f "$judge_stamp" ]; then
  if [ ! -x .venv-judge/bin/python ]; then
    "$python" -m venv .venv-judge
  fi
  echo "installing $judge_pin into .venv-judge ..." >&2
  .venv-judge/bin/python -m pip install --quiet --disable-pip-version-check "$judge_pin"
  rm -f .venv-judge/.installed-*
  touch "$judge_stamp"
fi

# buf (protobuf lint and breaking-change checks, tests/test_protos_buf.py) from npm into
# .tools/. Without npm the setup goes on, and that test fails saying why.
buf_version=1.75.0
if [ "$(.tools/node_modules/.bin/buf --version 2>/dev/null || true)" != "$buf_version" ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "installing buf $buf_version into .tools ..." >&2
    # --ignore-scripts: the package's postinstall only swaps its node launcher for the binary.
    npm install --prefix .tools --no-save --no-audit --no-fund --ignore-scripts \
      --loglevel=error "@bufbuild/buf@$buf_version" >&2 \
      || echo "warning: npm could not install buf; tests/test_protos_buf.py will fail" >&2
  else
    echo "warning: npm not found, buf not installed; tests/test_protos_buf.py will fail" >&2
  fi
fi

# promtool (checks and unit-tests the alerting rules, tests/deploy/test_monitoring.py),
# the one binary taken out of Debian's prometheus package into .tools/bin/: nothing is
# installed system-wide, and no Prometheus server runs. Without apt the setup goes on,
# and that test fails saying why.
if [ ! -x .tools/bin/promtool ]; then
  if command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1; then
    echo "installing promtool (Debian's prometheus package) into .tools/bin ..." >&2
    deb_dir=$(mktemp -d)
    if (cd "$deb_dir" && { apt-get download -qq prometheus 2>/dev/null \
          || { apt-get update -qq >/dev/null 2>&1 && apt-get download -qq prometheus 2>/dev/null; }; }) \
        && dpkg-deb -x "$deb_dir"/prometheus_*.deb "$deb_dir/x"; then
      mkdir -p .tools/bin
      cp "$deb_dir/x/usr/bin/promtool" .tools/bin/promtool
    else
      echo "warning: apt could not fetch prometheus; tests/deploy/test_monitoring.py will fail" >&2
    fi
    rm -rf "$deb_dir"
  else
    echo "warning: apt-get not found, promtool not installed; tests/deploy/test_monitoring.py will fail" >&2
  fi
fi
