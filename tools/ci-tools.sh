#!/usr/bin/env bash
# `make ci-tools`: the system packages that some checks of `make test` need and that no Python
# wheel provides: vagrant and ruby (for `vagrant validate` and `ruby -c` on the Vagrantfile,
# in `make etl-lint`). Installed only when asked, with Debian's apt-get (no recommends);
# .ci/run asks before `make test`. Without them `make test` still passes and says which
# checks it skipped.
set -euo pipefail

have() { command -v "$1" > /dev/null 2>&1; }

if have vagrant && have ruby; then
  echo "ci-tools: vagrant and ruby are already installed"
  exit 0
fi
if ! have apt-get; then
  echo "ci-tools: no apt-get here: install vagrant and ruby with your package manager" >&2
  exit 1
fi
sudo=()
if [[ "$(id -u)" != 0 ]]; then
  if ! have sudo; then
    echo "ci-tools: apt-get needs root: run as root, or install sudo" >&2
    exit 1
  fi
  sudo=(sudo)
fi
echo "ci-tools: apt-get update ..."
"${sudo[@]}" apt-get update -qq
echo "ci-tools: apt-get install --no-install-recommends vagrant ruby ..."
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
  vagrant ruby > /dev/null
echo "ci-tools: installed $(vagrant --version) and $(ruby --version | cut -d' ' -f1-2)"
