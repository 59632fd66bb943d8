#!/usr/bin/env bash
# Static checks of the Vagrantfile: `ruby -c` and `vagrant validate --ignore-provider`.
# vagrant and ruby are system packages that this script never installs (`make ci-tools` does,
# and .ci/run calls it); without them each check is skipped loudly, and recorded in
# $RESIDENCY_SKIPPED_CHECKS for the summary at the end of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

have() { command -v "$1" > /dev/null 2>&1; }

skipped() {
  echo "etl-lint: SKIPPED $1 ($2 is not installed; \`make ci-tools\` installs it)" >&2
  if [[ -n "${RESIDENCY_SKIPPED_CHECKS:-}" ]]; then
    echo "etl-lint: $1 ($2 is not installed; run \`make ci-tools\`)" >> "$RESIDENCY_SKIPPED_CHECKS"
  fi
}

if have ruby; then
  ruby -c Vagrantfile
else
  skipped "ruby -c Vagrantfile" ruby
fi

if have vagrant; then
  # validate evaluates the Vagrantfile; give it the variables a real run would have.
  env ECS_CLUSTER=acme-etl AWS_REGION=eu-central-1 \
    SSM_ACTIVATION_ID=check SSM_ACTIVATION_CODE=check \
    VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_HOME="${TMPDIR:-/tmp}/residency-vagrant-home" \
    VAGRANT_DOTFILE_PATH="${TMPDIR:-/tmp}/residency-vagrant-dotfile" \
    vagrant validate --ignore-provider
else
  skipped "vagrant validate --ignore-provider" vagrant
fi
