#!/usr/bin/env bash
# Deploys the service to Docker Swarm (make swarm-deploy), from a manager
# node, after checking what a deploy needs; nothing is deployed when a check
# fails, and the error says what to do:
#   scripts/swarm.sh deploy
# The stack is deploy/swarm/docker-stack.yml, with deploy/swarm/data.yml
# (PostgreSQL, its backups and Redis, on the node labelled SLUG.data=true,
# SLUG being the compose project's name) unless SWARM_DATA=managed says the
# database and Redis are managed services. Its settings come from .env,
# where the environment wins: IMAGE and DB_IMAGE (pushed to a registry
# every node reads), WEB_REPLICAS, WORKER_REPLICAS, STACK_NAME (default:
# SLUG).
#
# The command returns once every service has converged: the migrate job
# done, the new tasks healthy. An update whose new tasks fail is rolled back
# by Swarm, and the command fails naming the service.
set -euo pipefail

cd "$(dirname "$0")/.."

slug=$(sed -n 's/^name: *//p' docker-compose.prod.yml)
stack_file=deploy/swarm/docker-stack.yml

die() {
    echo "error: $1 (nothing was deployed)" >&2
    exit 1
}

# The secrets the app reads from files (SECRET_KEY_FILE and the like), and
# those of the database and Redis when they are in the stack.
APP_SECRETS=(SECRET_KEY DATABASE_URL REDIS_URL CACHE_URL EMAIL_URL)
DATA_SECRETS=(POSTGRES_PASSWORD APP_DB_PASSWORD REDIS_PASSWORD)

# .env's values, for those not set in the environment, read as Docker
# Compose reads them: NAME=value, where in "..." the escapes \n, \", \$ and
# \\ count and '...' is taken as written. The app's containers get them from
# a copy in Docker's environment-file format (one unquoted NAME=value a
# line; a line break written \n), SWARM_ENV_FILE: Swarm's own reading of
# .env would keep the quotes.
load_env() {
    local line name value
    [ -f .env ] || die ".env is missing: copy .env.example to .env and fill it in"
    SWARM_ENV_FILE=$(mktemp)
    export SWARM_ENV_FILE
    trap 'rm -f "${SWARM_ENV_FILE}"' EXIT
    while IFS= read -r line || [ -n "${line}" ]; do
        [[ "${line}" =~ ^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
        name=${BASH_REMATCH[1]}
        value=${BASH_REMATCH[2]}
        if [[ "${value}" =~ ^\"(.*)\"[[:space:]]*$ ]]; then
            value=$(unescape "${BASH_REMATCH[1]}")
        elif [[ "${value}" =~ ^\'(.*)\'[[:space:]]*$ ]]; then
            value=${BASH_REMATCH[1]}
        fi
        if [ -z "${!name+set}" ]; then
            export "${name}=${value}"
        fi
        value=${!name}
        printf '%s=%s\n' "${name}" "${value//$'\n'/\\n}" >>"${SWARM_ENV_FILE}"
    done <.env
}

# The text of a double-quoted .env value, its escapes undone.
unescape() {
    local text=$1 mark=$'\x01'
    text=${text//\\\\/${mark}}
    text=${text//\\\"/\"}
    text=${text//\\\$/\$}
    text=${text//\\n/$'\n'}
    printf '%s' "${text//${mark}/\\}"
}

# The Docker secret of a setting: SECRET_KEY -> SLUG-secret-key.
secret_name() {
    local name=${1,,}
    echo "${slug}-${name//_/-}"
}

labelled_nodes() {
    docker node ls --quiet --filter "node.label=$1=true" | wc -l
}

check() {
    local nodes
    if ! nodes=$(docker node ls --quiet 2>&1); then
        case "${nodes}" in
            *"Worker nodes"*) die "this node is a worker: run the deploy on a manager node" ;;
            *"not a swarm manager"*) die "this engine is not in a swarm: docker swarm init (or join one), then deploy again" ;;
            *) die "docker node ls failed: ${nodes}" ;;
        esac
    fi

    [ -n "${IMAGE:-}" ] || die "set IMAGE in .env: the service's image, pushed to a registry that every node can pull from"
    files=(-c "${stack_file}")
    secrets=("${APP_SECRETS[@]}")
    case "${SWARM_DATA:-stack}" in
        stack)
            files+=(-c deploy/swarm/data.yml)
            secrets+=("${DATA_SECRETS[@]}")
            [ -n "${DB_IMAGE:-}" ] || die "set DB_IMAGE in .env: the db image (docker/postgres), pushed like IMAGE"
            case "${BACKUP_DIR:-}" in
                /*) ;;
                *) die "set BACKUP_DIR in .env to an absolute path on the data node: a swarm has no project directory (got '${BACKUP_DIR:-}')" ;;
            esac
            if [ "$(labelled_nodes "${slug}.data")" != 1 ]; then
                die "label the one node that keeps the database's and Redis's volumes: docker node update --label-add ${slug}.data=true NODE"
            fi
            ;;
        managed) ;;
        *) die "SWARM_DATA must be stack (PostgreSQL and Redis in the stack, deploy/swarm/data.yml) or managed, got '${SWARM_DATA}'" ;;
    esac
    # What the stack file has: a proxy, media files in a volume.
    if grep -q '^  proxy:' "${stack_file}" && [ "$(labelled_nodes "${slug}.proxy")" != 1 ]; then
        die "label the one node that runs the proxy (the site's DNS names it): docker node update --label-add ${slug}.proxy=true NODE"
    fi
    local count
    count=$(wc -l <<<"${nodes}")
    if grep -q ' media:/app/media$' "${stack_file}" && [ "${count}" -gt 1 ]; then
        die "this swarm has ${count} nodes, and the media files are in a volume, which is one host's: web on another node would not see them. Keep them in a bucket: copier update --data media_backend=s3 (README.md, \"Running on more than one machine\")"
    fi

    if grep -q AWS_SECRET_ACCESS_KEY_FILE "${stack_file}"; then
        secrets+=(AWS_SECRET_ACCESS_KEY)
    fi
    local name missing=()
    for name in "${secrets[@]}"; do
        if [ -n "${!name:-}" ]; then
            die "${name} is set in .env: on Swarm it is the Docker secret $(secret_name "${name}"), never an environment variable; create the secret and empty ${name} in .env"
        fi
        docker secret inspect "$(secret_name "${name}")" >/dev/null 2>&1 || missing+=("$(secret_name "${name}")")
    done
    if [ -n "${missing[*]}" ]; then
        die "create the Docker secrets ${missing[*]}, e.g. printf %s \"\$VALUE\" | docker secret create ${missing[0]} - (README.md, \"Running on more than one machine\")"
    fi
}

deploy() {
    load_env
    check
    local stack="${STACK_NAME:-${slug}}"
    if [ -f Caddyfile ]; then
        CADDYFILE_CHECKSUM=$(sha256sum Caddyfile | cut -c1-12)
        export CADDYFILE_CHECKSUM
    fi

    # Each service's last update before this deploy: a rollback seen
    # afterwards is this deploy's only if it is another update.
    local service before=()
    for service in $(stack_services "${stack}"); do
        before+=("$(update_status "${service}")")
    done

    echo "Deploying ${IMAGE} as the stack ${stack}..."
    local attempt output
    # Two deploys at once: docker stack deploy reads every service first and
    # then updates them one by one, and Swarm refuses an update of a service
    # that changed in between ("update out of sequence"). The other deploy
    # changes them, and so does Swarm, as each rolling update it starts
    # begins and ends. So this deploy waits for the stack to converge before
    # it deploys again, and a random pause keeps two waiting deploys from
    # colliding again in step.
    for attempt in 1 2 3 4 5; do
        if output=$(docker stack deploy --with-registry-auth "${files[@]}" "${stack}" 2>&1); then
            echo "${output}"
            break
        fi
        echo "${output}"
        if [[ "${output}" != *"update out of sequence"* ]] || [ "${attempt}" = 5 ]; then
            echo "error: docker stack deploy failed (above)" >&2
            exit 1
        fi
        echo "Another deploy changed the stack meanwhile: deploying again once the stack has converged..."
        wait_until_converged "${stack}"
        sleep $((RANDOM % 8 + 1))
    done
    wait_until_converged "${stack}"

    local status failed=()
    for service in $(stack_services "${stack}"); do
        status=$(update_status "${service}")
        if [[ "${status}" == rollback_* ]] && [[ " ${before[*]} " != *" ${status} "* ]]; then
            failed+=("${service}")
        fi
    done
    if [ -n "${failed[*]}" ]; then
        echo "error: the update of ${failed[*]} was rolled back: its new tasks did not become healthy (docker service ps --no-trunc ${failed[0]})" >&2
        exit 1
    fi
    echo "Deployed ${IMAGE}: every service has converged."
}

# The stack's services, one per line, and the value of a field of
# `docker stack services --format json`.
stack_services() {
    docker stack services --format json "$1" | json_field Name
}
json_field() {
    sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"
}

# A service's last update, as STATE@STARTED: its state (updating,
# completed, paused, rollback_started, rollback_completed...) and when it
# started; empty before its first update.
update_status() {
    docker service inspect "$1" | awk -F'"' '
        /"UpdateStatus": \{/ { found = 1; next }
        found && /"State":/ { state = $4 }
        found && /"StartedAt":/ { started = $4 }
        found && /\}/ { print state "@" started; exit }'
}

# Returns once every service of the stack has as many tasks running as it
# wants (a job: its runs completed) and no update or rollback in progress,
# seen three times in a row: an update starts a moment after the deploy.
# (docker stack deploy --detach=false never returns for a job.)
wait_until_converged() {
    local stack=$1 deadline=$((SECONDS + ${SWARM_DEPLOY_TIMEOUT:-900})) steady=0 line name replicas pending
    echo "Waiting for every service to converge (at most ${SWARM_DEPLOY_TIMEOUT:-900} s)..."
    while [ "${steady}" -lt 3 ]; do
        sleep 2
        pending=()
        while IFS= read -r line; do
            name=$(json_field Name <<<"${line}")
            replicas=$(json_field Replicas <<<"${line}")
            if [[ "${replicas}" =~ \(([0-9]+)/([0-9]+)\ completed\) ]] || [[ "${replicas}" =~ ^([0-9]+)/([0-9]+)$ ]]; then
                [ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ] || pending+=("${name}")
            else
                pending+=("${name}")
            fi
            case "$(update_status "${name}")" in
                updating@* | rollback_started@*) pending+=("${name}") ;;
            esac
        done < <(docker stack services --format json "${stack}")
        if [ -z "${pending[*]}" ]; then
            steady=$((steady + 1))
        else
            steady=0
        fi
        if [ -n "${pending[*]}" ] && [ "${SECONDS}" -ge "${deadline}" ]; then
            echo "error: ${pending[*]} did not converge within ${SWARM_DEPLOY_TIMEOUT:-900} s (SWARM_DEPLOY_TIMEOUT): docker service ps --no-trunc ${pending[0]}" >&2
            exit 1
        fi
    done
}

case "${1:-}" in
    deploy) deploy ;;
    *)
        echo "usage: scripts/swarm.sh deploy" >&2
        exit 2
        ;;
esac
