#!/bin/bash
# igneous workers as a SLURM job array, taking tasks from a PostgreSQL queue.
#
#   export IGNEOUS_QUEUE='postgresql://lab@db.cluster:5432/igneous?queue=mesh'
#   igneous mesh forge file:///shared/seg --mip 2 --queue "$IGNEOUS_QUEUE"
#   sbatch --export=ALL deploy/slurm-workers.sh
#   igneous queue status "$IGNEOUS_QUEUE"
#
# Each array task runs one igneous process with one worker per allocated CPU
# and exits when the queue is empty (-x). Array tasks can start, die or be
# preempted at any time: a task whose worker vanishes is leased again when its
# lease runs out. Every worker process holds one database connection, and so
# does each array task's parent process: keep
#   array tasks x (cpus-per-task + 1)
# below the server's max_connections (100 by default), here 16 x 5 = 80.
# The password comes from ~/.pgpass (mode 600) or PGPASSWORD, never the spec.
#
#SBATCH --job-name=igneous
#SBATCH --array=0-15
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=12:00:00
#SBATCH --output=igneous-%A_%a.out
#SBATCH --requeue
# SIGTERM to the job 5 minutes before the time limit: the workers finish their
# current task, give the rest back and exit cleanly
#SBATCH --signal=B:TERM@300

set -euo pipefail

: "${IGNEOUS_QUEUE:?set IGNEOUS_QUEUE=postgresql://USER@HOST:PORT/DB?queue=NAME}"

# a virtualenv (or conda env) with igneous installed, on the shared filesystem
if [[ -n "${IGNEOUS_VENV:-}" ]]; then
  # shellcheck disable=SC1091
  source "${IGNEOUS_VENV}/bin/activate"
fi

echo "igneous worker ${SLURM_ARRAY_JOB_ID:-?}_${SLURM_ARRAY_TASK_ID:-?} on $(hostname)," \
  "${SLURM_CPUS_PER_TASK:-1} processes"

# exec: igneous becomes the job's main process and receives SLURM's SIGTERM
exec igneous -p "${SLURM_CPUS_PER_TASK:-1}" execute -x --quiet \
  --lease-sec 600 --max-attempts 3 "${IGNEOUS_QUEUE}"
