#!/bin/sh
# The local cluster's Bugsink image starts like the official bugsink/bugsink
# image: checks, migrations, the first user from CREATE_SUPERUSER (prestart),
# then gunicorn beside the snappea background worker, under monofy.
set -e
cd /opt/python/lib/python3*/site-packages
exec monofy bugsink-show-version \
  '&&' bugsink-manage check --deploy --fail-level WARNING \
  '&&' bugsink-manage migrate \
  '&&' bugsink-manage migrate snappea --database=snappea \
  '&&' bugsink-manage prestart \
  '&&' gunicorn --config bugsink/gunicorn.docker.conf.py --bind="0.0.0.0:${PORT:-8000}" --access-logfile - bugsink.wsgi \
  '|||' bugsink-runsnappea
