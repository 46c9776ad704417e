#!/usr/bin/env bash
# Everything issue 15 needs from a GPU, in ONE call of the device tool (a bare H200 machine, no network).
#
#   on the device:  bash benchmarks/device/run.sh              carry [".whl"] (bash benchmarks/device/fetch_wheels.sh first)
#   here, on a CPU: bash benchmarks/device/run.sh --dry-run    the same steps, the benchmark with --quick --device cpu
#
# Steps, each under its own time limit (seconds), all output in $OUT/log (PYTHONUNBUFFERED=1):
#   install   the carried wheels into $SITE (default /tmp/site); cnn-probe itself from the checkout, with links
#             probe/cli -> cli and probe/gallery -> gallery (pyproject's package-dir; nothing to build; the dry run
#             removes them at the end)
#   machine   nvidia-smi, and the versions and device torch sees
#   tests     pytest -m cuda (tests/test_cuda.py and every other cuda-marked test)   -> $OUT/pytest.xml
#   bench     python -m benchmarks --suite gpu (every row prints as it finishes)     -> $OUT/<date>-cuda-<card>.json
# $OUT/steps.tsv: step, exit status, seconds. At most 8 minutes (the limits add up to 480 s), about 6 planned;
# the device tool allows 10 a call and 15 a session, so read steps.tsv before any rerun.
set -uo pipefail
cd "$(dirname "$0")/../.."

DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; fi
OUT=${OUT:-$(mktemp -d /tmp/probe-device-out.XXXXXX)}
SITE=${SITE:-$([ $DRY = 1 ] && mktemp -d /tmp/probe-device-site.XXXXXX || echo /tmp/site)}
mkdir -p "$OUT" "$SITE"
export SITE
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
LOG=$OUT/log
: >"$LOG"
printf 'step\tstatus\tseconds\n' >"$OUT/steps.tsv"
if [ $DRY = 1 ]; then DEVICE=(--quick --device cpu); else DEVICE=(--device cuda); fi
if [ $DRY = 1 ]; then
  for part in cli gallery; do [ -e "probe/$part" ] || trap "rm -f probe/cli probe/gallery" EXIT; done
fi

say() { echo "$*" | tee -a "$LOG"; }

step() {  # step NAME LIMIT COMMAND...: run COMMAND under LIMIT seconds, output to the log, status to steps.tsv
  local name=$1 limit=$2 start status
  shift 2
  say "== $name (at most ${limit}s): $*"
  start=$(date +%s)
  if declare -F "$1" >/dev/null; then set -- bash -c "$(declare -f "$1"); $1"; fi  # timeout runs programs only
  timeout -k 5 "$limit" "$@" 2>&1 | tee -a "$LOG"
  status=${PIPESTATUS[0]}
  printf '%s\t%s\t%s\n' "$name" "$status" "$(($(date +%s) - start))" >>"$OUT/steps.tsv"
  say "== $name: exit $status after $(($(date +%s) - start))s$([ "$status" = 124 ] && echo ' (time limit)')"
  return "$status"
}

install() {
  local wheels=(.whl/*.whl)
  if [ ! -e "${wheels[0]}" ]; then
    echo "no wheels in .whl/: run bash benchmarks/device/fetch_wheels.sh here and carry .whl"
    return 1
  fi
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "${wheels[@]}" || return 1
  local part
  for part in cli gallery; do  # python3 -m puts the checkout first on sys.path: its probe/ must hold them
    [ -e "probe/$part" ] || ln -s "../$part" "probe/$part" || return 1
  done
  python3 -c "import probe.cli.main, probe.gallery.html; print('cnn-probe from', probe.__file__, probe.cli.main.__file__)"
}

machine() {
  if command -v nvidia-smi >/dev/null; then nvidia-smi; else echo "no nvidia-smi on this machine"; fi
  python3 - <<'EOF'
import platform, torch, torchvision, probe, probe.cli.main, captum, lucent, kornia
print("python", platform.python_version(), "| torch", torch.__version__, "| cuda", torch.version.cuda,
      "| torchvision", torchvision.__version__, "| captum", captum.__version__, "| kornia", kornia.__version__)
print("probe from", probe.__file__, "| lucent from", lucent.__file__)
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(0), "| capability", torch.cuda.get_device_capability(0),
          "| memory %.1f GiB" % (torch.cuda.get_device_properties(0).total_memory / 2**30))
else:
    print("no CUDA device: torch.cuda.is_available() is false")
EOF
}

step install 60 install || { say "install failed: nothing else can run"; exit 1; }
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"  # benchmarks/ runs from the checkout
step machine 30 machine
step tests 90 python3 -m pytest -m cuda -q -p no:cacheprovider --junitxml="$OUT/pytest.xml" tests
if [ $DRY = 1 ]; then
  step bench 240 python3 -m benchmarks --suite gpu "${DEVICE[@]}" --no-save
else
  step bench 300 python3 -m benchmarks --suite gpu "${DEVICE[@]}" --results "$OUT"
fi
say "== done: $OUT holds $(ls "$OUT" | tr '\n' ' ')"
