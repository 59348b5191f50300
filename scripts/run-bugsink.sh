#!/usr/bin/env bash
# Runs Bugsink, a self-hosted Sentry-compatible error tracker, on this machine:
# a place to send the service's errors when you run it without Kubernetes.
#
#   scripts/run-bugsink.sh [--port PORT] [--data-dir DIR]
#
# On the first run it creates DIR (default: .tools/bugsink-data) with the
# configuration, the sqlite databases, a project "somework", a UI login and an
# API token. Later runs reuse all of them. It then serves Bugsink on
# 127.0.0.1:PORT (default 8000) in the foreground until Ctrl-C, after printing
# the SENTRY_DSN to give the service and the login for the web UI.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  sed -n 's/^#   //p' "${BASH_SOURCE[0]}" >&2
  exit 2
}

PORT=8000
DATA_DIR="$TOOLS_DIR/bugsink-data"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --port)
      [[ $# -ge 2 ]] || usage
      PORT="$2"
      shift 2
      ;;
    --data-dir)
      [[ $# -ge 2 ]] || usage
      DATA_DIR="$2"
      shift 2
      ;;
    -h | --help) usage ;;
    *)
      warn "unknown argument: $1"
      usage
      ;;
  esac
done
[[ "$PORT" =~ ^[0-9]+$ && "$PORT" -ge 1 && "$PORT" -le 65535 ]] ||
  die "--port must be a number from 1 to 65535, not '$PORT'"

"$ROOT/scripts/install-bugsink.sh"
VENV="$TOOLS_DIR/bugsink-venv"

if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  die "something already listens on 127.0.0.1:$PORT; stop it or pass --port"
fi

mkdir -p "$DATA_DIR"
DATA_DIR="$(cd "$DATA_DIR" && pwd)"
CONF="$DATA_DIR/bugsink_conf.py"
if [[ ! -f "$CONF" ]]; then
  log "writing $CONF"
  # The 'local' template digests events as they arrive, so no separate
  # bugsink-runsnappea worker is needed.
  "$VENV/bin/bugsink-create-conf" --template=local --host=127.0.0.1 --port="$PORT" \
    --output-file="$CONF" >/dev/null
  cat >>"$CONF" <<'EOF'


# ---- Added by somework's scripts/run-bugsink.sh ----
import os  # noqa: E402

# Keep the databases and uploads next to this file, whatever the current directory.
_HERE = os.path.dirname(os.path.abspath(__file__))
DATABASES["default"]["NAME"] = os.path.join(_HERE, "db.sqlite3")  # noqa: F405
DATABASES["snappea"]["NAME"] = os.path.join(_HERE, "snappea.sqlite3")  # noqa: F405
BUGSINK["INGEST_STORE_BASE_DIR"] = os.path.join(_HERE, "ingestion")

# DSNs and links point at the port that run-bugsink.sh serves on.
BUGSINK["BASE_URL"] = os.environ.get("BUGSINK_BASE_URL", BUGSINK["BASE_URL"])

# Do not report usage statistics to bugsink.com: nothing leaves this machine.
BUGSINK["PHONEHOME"] = False
EOF
fi

export DJANGO_SETTINGS_MODULE=bugsink_conf
export PYTHONPATH="$DATA_DIR"
export BUGSINK_BASE_URL="http://127.0.0.1:$PORT"
cd "$DATA_DIR"

log "migrating the databases in $DATA_DIR (about 5 s on the first run)"
"$VENV/bin/bugsink-manage" migrate --no-input --verbosity=0
"$VENV/bin/bugsink-manage" migrate snappea --database=snappea --no-input --verbosity=0

PASSWORD_FILE="$DATA_DIR/admin-password"
if [[ ! -f "$PASSWORD_FILE" ]]; then
  (umask 077 && "$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(12))' >"$PASSWORD_FILE")
fi

log "creating the project, the UI user and the API token unless they exist"
# Prints three lines: the DSN, the user name and the API token.
setup="$(ADMIN_PASSWORD="$(<"$PASSWORD_FILE")" "$VENV/bin/bugsink-manage" shell --no-imports -c '
import os
from django.contrib.auth import get_user_model
from bsmain.models import AuthToken
from projects.models import Project, ProjectMembership, ProjectRole
from teams.models import Team, TeamMembership, TeamRole

team, _ = Team.objects.get_or_create(name="somework")
project, _ = Project.objects.get_or_create(team=team, name="somework")

User = get_user_model()
admin = User.objects.filter(username="admin").first()
if admin is None:
    admin = User.objects.create_superuser("admin", password=os.environ["ADMIN_PASSWORD"])
TeamMembership.objects.get_or_create(
    team=team, user=admin, defaults={"role": TeamRole.ADMIN, "accepted": True})
ProjectMembership.objects.get_or_create(
    project=project, user=admin, defaults={"role": ProjectRole.ADMIN, "accepted": True})

description = "somework run-bugsink.sh"
token = AuthToken.objects.filter(description=description).first()
if token is None:
    token = AuthToken.create_full_access(description=description)

print(project.dsn)
print(admin.username)
print(token.token)
' | tail -n 3)"
{ read -r DSN && read -r USERNAME && read -r TOKEN; } <<<"$setup" ||
  die "unexpected output from setting Bugsink up: $setup"

printf 'export SENTRY_DSN=%s\n' "$DSN" >"$DATA_DIR/sentry.env"
# For scripts that read the API (run-local.sh); readable by this user only.
(umask 077 && printf '%s\n' "$TOKEN" >"$DATA_DIR/api-token")
cat >&2 <<EOF

Bugsink is starting on http://127.0.0.1:$PORT (Ctrl-C stops it).

  Send the service's errors here:   export SENTRY_DSN=$DSN
                                    (or: source $DATA_DIR/sentry.env)
  Web UI:                           http://127.0.0.1:$PORT/
  Login:                            $USERNAME / $(<"$PASSWORD_FILE")
  API token (canonical API):        $TOKEN
      curl -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/canonical/0/issues/?project=${DSN##*/}'

EOF

exec "$VENV/bin/gunicorn" --bind "127.0.0.1:$PORT" --workers 2 --no-control-socket \
  --access-logfile - bugsink.wsgi
