#!/usr/bin/env bash
# Time the README's first command, `bash scripts/install.sh`, on a fresh clone of this checkout's HEAD.
#
#   bash benchmarks/install_time.sh            # the lock-file install (the default)
#   MODES="lock resolve" bash benchmarks/install_time.sh   # also the resolving install (MRO_NO_LOCK=1)
#   REV=38b2d46 bash benchmarks/install_time.sh     # the install of an older commit (before the lock)
#
# Wall time depends on the network (packages come from the registry) and on whatever else the
# machine runs, so the table records the CPU time of the install and the load average beside it.
# Appends one row per mode to benchmarks/results/install/install_time.md.
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results/install/install_time.md
mkdir -p "$(dirname "$out")"
if [[ ! -f "$out" ]]; then
  {
    echo "# Fresh install: \`bash scripts/install.sh\` on a clean clone"
    echo
    echo "| date (UTC) | commit | mode | wall | CPU (user+sys) | load avg before | python | machine |"
    echo "|---|---|---|---|---|---|---|---|"
  } > "$out"
fi
commit=$(git rev-parse --short "${REV:-HEAD}")
for mode in ${MODES:-lock}; do
  tmp=$(mktemp -d)
  git clone -q . "$tmp/mro"
  git -C "$tmp/mro" checkout -q "$commit"
  load=$(cut -d' ' -f1 /proc/loadavg)
  extra=()
  [[ "$mode" == resolve ]] && extra=(MRO_NO_LOCK=1)
  start=$(date +%s.%N)
  ( cd "$tmp/mro" && env "${extra[@]}" bash -c 'time bash scripts/install.sh' ) 2> "$tmp/time.txt" >/dev/null
  end=$(date +%s.%N)
  cpu=$(grep -E '^(user|sys)' "$tmp/time.txt" | awk '{split($2,a,"m"); s+=a[1]*60+a[2]} END {printf "%.0f", s}')
  wall=$(python3 -c "print(round($end - $start))")
  "$tmp/mro/.venv/bin/mro" --help > /dev/null  # the install works
  row="| $(date -u +%Y-%m-%d) | $commit | $mode | $((wall / 60)) min $((wall % 60)) s | $((cpu / 60)) min $((cpu % 60)) s | $load | $(python3 -V | cut -d' ' -f2) | $(uname -m), $(nproc) cores |"
  echo "$row" | tee -a "$out"
  rm -rf "$tmp"
done
