#!/usr/bin/env bash
# Our side of the full-data zero-shot comparison on the device machine:
# `optima eval --json` on every document of the six tasks (all 57 MMLU
# subjects), on the CPU, in a process session of its own so that it outlives
# the device command that starts it (the full data takes longer than one
# command may run; the GPU meanwhile runs zeroshot_harness_device.sh).
#
#     bash tools/oracle/zeroshot_optima_device.sh start        # returns at once
#     bash tools/oracle/zeroshot_optima_device.sh wait 560     # waits up to 560 s
#
# `wait` copies optima_zeroshot_full.json (when finished) and
# optima_zeroshot_full.log to $OUT (or $OUTDIR); it exits 0 once optima has
# finished successfully, 3 while it still runs (call `wait` again, in the
# next command, while the machine is still warm), 1 if it failed.
#
# Done on 2026-11-30 on the 2×H200 machine (32 cores) beside
# zeroshot_harness_device.sh, with THREADS=16 while the other 16 cores ran
# prunes: `THREADS=16 bash tools/oracle/zeroshot_optima_device.sh start`,
# then `wait` in the following commands; 688 s wall (687 s recorded in its
# "seconds") for every document (1838 + 2376 + 1172 + 1267 + 500 + 14042
# MMLU). Its optima_zeroshot_full.json is committed as
# stages/eval/testdata/smollm2_zeroshot_optima_full.json, which
# TestSmolLM2ZeroShotFull compares with the harness's run: acc (acc_norm)
# piqa 64.31, arc_easy 50.04 (45.58), arc_challenge 24.40 (26.54),
# winogrande 50.43, openbookqa 20.20 (31.20), mmlu 23.10, average 38.75,
# all identical to the harness's.
#
# Settings (environment): OPTIMA (/root/keep/optima), GGUF (/root/keep/m.gguf),
# DATA (/root/keep/data), STATE (/root/keep/zs), THREADS (all cores but 2,
# left to the harness), LIMIT (0: every document), OUTDIR ($OUT).
#
# Then, here: OPTIMA_ZEROSHOT_OURS_FULL=.../optima_zeroshot_full.json
# OPTIMA_ZEROSHOT_HARNESS_FULL=.../zeroshot_harness_full.json.gz go test -run SmolLM2ZeroShotFull -v ./stages/eval
# (without the two variables it compares the committed pair).
set -euo pipefail

OPTIMA=${OPTIMA:-/root/keep/optima}
GGUF=${GGUF:-/root/keep/m.gguf}
DATA=${DATA:-/root/keep/data}
STATE=${STATE:-/root/keep/zs}
LIMIT=${LIMIT:-0}
THREADS=${THREADS:-$(( $(nproc) > 4 ? $(nproc) - 2 : $(nproc) ))}
TASKS=piqa,arc_easy,arc_challenge,winogrande,openbookqa,mmlu

case "${1:-}" in
start)
	if [ -e "$STATE/pid" ] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null; then
		echo "zeroshot_optima_device.sh: already running (pid $(cat "$STATE/pid"))"
		exit 0
	fi
	for f in "$OPTIMA" "$GGUF" "$DATA/mmlu/test"; do
		[ -e "$f" ] || { echo "zeroshot_optima_device.sh: missing $f" >&2; exit 2; }
	done
	rm -rf "$STATE" && mkdir -p "$STATE"
	# setsid: a session of its own, not ended when the device command returns.
	setsid nohup bash -c '
		start=$(date +%s)
		"$0" eval --model "$1" --data-dir "$2" --task "$3" --limit "$4" --threads "$5" --json --no-progress \
			>"$6/optima_zeroshot_full.json.tmp" 2>"$6/optima_zeroshot_full.log"
		rc=$?
		[ $rc -eq 0 ] && mv "$6/optima_zeroshot_full.json.tmp" "$6/optima_zeroshot_full.json"
		echo "optima eval: rc $rc, $(( $(date +%s) - start )) s" >>"$6/optima_zeroshot_full.log"
		echo $rc >"$6/rc"' \
		"$OPTIMA" "$GGUF" "$DATA" "$TASKS" "$LIMIT" "$THREADS" "$STATE" </dev/null >/dev/null 2>&1 &
	echo $! >"$STATE/pid"
	echo "zeroshot_optima_device.sh: optima eval started (pid $!, $THREADS threads, limit $LIMIT), writing to $STATE"
	;;
wait)
	OUTDIR=${OUTDIR:-${OUT:?set OUT or OUTDIR}}
	limit=${2:-560}
	[ -e "$STATE/pid" ] || { echo "zeroshot_optima_device.sh: not started ($STATE/pid missing)" >&2; exit 2; }
	t=0
	while [ ! -e "$STATE/rc" ] && [ "$t" -lt "$limit" ]; do
		sleep 5
		t=$((t + 5))
	done
	mkdir -p "$OUTDIR"
	cp "$STATE/optima_zeroshot_full.log" "$OUTDIR/"
	if [ ! -e "$STATE/rc" ]; then
		echo "zeroshot_optima_device.sh: optima eval still running after ${t}s of waiting; call wait again"
		exit 3
	fi
	tail -n 3 "$STATE/optima_zeroshot_full.log"
	rc=$(cat "$STATE/rc")
	[ "$rc" -eq 0 ] || { echo "zeroshot_optima_device.sh: optima eval failed (rc $rc)" >&2; exit 1; }
	cp "$STATE/optima_zeroshot_full.json" "$OUTDIR/"
	echo "zeroshot_optima_device.sh: $OUTDIR/optima_zeroshot_full.json"
	;;
*)
	echo "usage: zeroshot_optima_device.sh start | wait [SECONDS]" >&2
	exit 2
	;;
esac
