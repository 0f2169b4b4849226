#!/usr/bin/env bash
# Fails when models and migrations disagree, or when migrations are not
# applied to the database that DATABASE_URL names. Run it in CI and before
# a deploy:
#   DATABASE_URL=postgres://... scripts/check_migrations.sh
set -euo pipefail

cd "$(dirname "$0")/.."

echo "Checking that every model change has a migration..."
python src/manage.py makemigrations --check --dry-run

echo "Checking that every migration is applied..."
python src/manage.py migrate --check

echo "Migrations are complete and applied."
