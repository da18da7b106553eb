#!/usr/bin/env bash
# Waits up to $1 s for the issue-6 checks, then copies them to $OUT as one tar.
K=/root/keep; n=0; while [ ! -e $K/i6/done ] && [ $n -lt ${1:-0} ]; do sleep 5; n=$((n+5)); done
cat $K/i6/status.txt; tar -C $K -czf $OUT/i6.tgz i6; grep -E '^(--- FAIL|FAIL|ok|PASS)' $K/i6/*_test.txt | head -30
