#!/usr/bin/env bash
# Rebuilds the folder of wheels that zeroshot_harness_device.sh installs on the
# H200 device (Python 3.12, no network there): lm-evaluation-harness 0.4.13 and
# what it needs beyond the device's preinstalled packages (KINDS.md of the
# device tool lists those). Pure-Python wheels only; sqlitedict, word2number
# and rouge_score exist only as sdists and are built here with pip wheel.
#
#     tools/oracle/get-harness-wheels.sh [DIR=.carry/i5h]
set -euo pipefail
dir=${1:-.carry/i5h}
mkdir -p "$dir"
wheels=(lm_eval==0.4.13 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 gguf==0.19.0
  evaluate==0.4.6 pytablewriter==1.2.1 dataproperty==1.1.1 mbstrdecoder==1.1.5
  pathvalidate==3.3.1 tabledata==1.3.5 tcolorpy==0.1.7 typepy==1.3.5 chardet==6.0.0.post1
  pytz==2026.6 nltk==3.10.4 defusedxml==0.7.1 more_itertools==11.2.1)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d "$dir" "${wheels[@]}"
python3 -m pip wheel -q --no-deps -w "$dir" sqlitedict==2.1.0 word2number==1.1 rouge_score==0.1.2
ls "$dir"
