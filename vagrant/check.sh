#!/usr/bin/env bash
# Static checks of the Vagrantfile: `ruby -c` and `vagrant validate --ignore-provider`.
# Installs Debian's vagrant (which brings ruby) when absent and apt can be used; otherwise
# skips with a message, so that `make test` still works on machines without apt or root.
set -euo pipefail
cd "$(dirname "$0")/.."

have() { command -v "$1" > /dev/null 2>&1; }

if ! have vagrant || ! have ruby; then
  if have apt-get && [[ "$(id -u)" == 0 ]]; then
    echo "etl-lint: installing vagrant and ruby from Debian (apt-get, no recommends)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq > /dev/null \
      && apt-get install -y -qq --no-install-recommends vagrant ruby > /dev/null \
      || echo "etl-lint: apt-get could not install vagrant"
  fi
fi

if have ruby; then
  ruby -c Vagrantfile
else
  echo "etl-lint: SKIPPED ruby -c Vagrantfile (no ruby, and apt-get as root is unavailable)"
fi

if have vagrant; then
  # validate evaluates the Vagrantfile; give it the variables a real run would have.
  env ECS_CLUSTER=acme-etl AWS_REGION=eu-central-1 \
    SSM_ACTIVATION_ID=check SSM_ACTIVATION_CODE=check \
    VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_HOME="${TMPDIR:-/tmp}/residency-vagrant-home" \
    VAGRANT_DOTFILE_PATH="${TMPDIR:-/tmp}/residency-vagrant-dotfile" \
    vagrant validate --ignore-provider
else
  echo "etl-lint: SKIPPED vagrant validate (no vagrant, and apt-get as root is unavailable)"
fi
