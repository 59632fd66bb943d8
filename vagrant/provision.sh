#!/usr/bin/env bash
# Provision one on-premises host for ECS Anywhere, labelled with its location.
#
# Environment (set by the Vagrantfile):
#   RESIDENCY_LOCATION            location of this host, e.g. newyork (required)
#   RESIDENCY_LOCATION_ATTRIBUTE  attribute name (default: location)
#   RESIDENCY_DATA_DIR            the host's data directory (default: /data)
#   ECS_CLUSTER, AWS_REGION       cluster to join and its region
#   SSM_ACTIVATION_ID, SSM_ACTIVATION_CODE   from `aws ssm create-activation`
#
# The location goes into /etc/ecs/ecs.config *before* the agent first registers, so the
# container instance is created with the attribute: it never exists unlabelled. The data
# directory gets the same location as its residency label (.residency-label.json), which
# the jobs' data guard reads before opening any data (docs/enforcement.md). Without an
# activation everything else is still done and the missing variables are listed.
set -euo pipefail

readonly INSTALLER_URL="https://amazon-ecs-agent.s3.amazonaws.com/ecs-anywhere-install-latest.sh"
# Overridable so the script can be tested without touching the machine that runs the tests.
readonly ECS_CONFIG="${RESIDENCY_ECS_CONFIG:-/etc/ecs/ecs.config}"

log() { printf 'provision: %s\n' "$*"; }
fail() { printf 'provision: error: %s\n' "$*" >&2; exit 1; }

location="${RESIDENCY_LOCATION:-}"
attribute="${RESIDENCY_LOCATION_ATTRIBUTE:-location}"
data_dir="${RESIDENCY_DATA_DIR:-/data}"
[[ -n "$location" ]] || fail "RESIDENCY_LOCATION is not set"
# The same rule residency applies to names: nothing that could change a placement expression.
[[ "$location" =~ ^[A-Za-z0-9_.-]{1,128}$ ]] || fail "invalid location '$location'"
[[ "$attribute" =~ ^[A-Za-z0-9_.-]{1,128}$ && "$attribute" != ecs.* ]] \
  || fail "invalid attribute name '$attribute'"

# Replace (or add) one KEY=value line of ecs.config, keeping the others.
set_ecs_config() {
  local key="$1" value="$2" tmp
  mkdir -p "$(dirname "$ECS_CONFIG")"
  touch "$ECS_CONFIG"
  tmp="$(mktemp)"
  grep -v "^${key}=" "$ECS_CONFIG" > "$tmp" || true
  printf '%s=%s\n' "$key" "$value" >> "$tmp"
  install -m 0644 "$tmp" "$ECS_CONFIG"
  rm -f "$tmp"
}

log "host $(hostname) in location '$location'"
set_ecs_config ECS_INSTANCE_ATTRIBUTES "{\"${attribute}\": \"${location}\"}"
log "wrote ECS_INSTANCE_ATTRIBUTES to $ECS_CONFIG"

# The label: root-owned, 0644 (the jobs read it, never write it), replaced atomically.
mkdir -p "$data_dir"
label_tmp="$(mktemp "$data_dir/.residency-label.json.XXXXXX")"
printf '{"location": "%s"}\n' "$location" > "$label_tmp"
chmod 0644 "$label_tmp"
mv -f "$label_tmp" "$data_dir/.residency-label.json"
log "labelled the data in $data_dir with location '$location'"

if ! command -v curl > /dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends curl ca-certificates
fi

missing=()
for name in ECS_CLUSTER AWS_REGION SSM_ACTIVATION_ID SSM_ACTIVATION_CODE; do
  [[ -n "${!name:-}" ]] || missing+=("$name")
done
if ((${#missing[@]})); then
  log "not registering with ECS Anywhere: missing ${missing[*]}"
  log "create an activation (aws ssm create-activation --iam-role ecsAnywhereRole ...),"
  log "export the variables above and run 'vagrant provision'"
  exit 0
fi

if systemctl is-active --quiet ecs 2> /dev/null; then
  log "the ECS agent is already running; nothing to install"
  exit 0
fi

installer="$(mktemp)"
trap 'rm -f "$installer"' EXIT
log "downloading the ECS Anywhere installer"
curl --fail --silent --show-error --proto '=https' --output "$installer" "$INSTALLER_URL"
log "registering with cluster '$ECS_CLUSTER' in $AWS_REGION"
# The activation code is a secret: it goes to the installer only, never to the log.
bash "$installer" \
  --region "$AWS_REGION" \
  --cluster "$ECS_CLUSTER" \
  --activation-id "$SSM_ACTIVATION_ID" \
  --activation-code "$SSM_ACTIVATION_CODE"
log "registered; check with: residency hosts --location $location"
