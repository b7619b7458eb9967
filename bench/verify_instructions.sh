#!/bin/sh
# Instructions per check under callgrind (see verify_instructions.py): total, crypto, the rest.
set -eu
cd "$(dirname "$0")/.."
count=${COUNT:-2000}
python=${PYTHON:-.venv/bin/python}
out=$(mktemp -d)
for mode in none crypto verify; do
    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file="$out/$mode" \
        "$python" bench/verify_instructions.py --count "$count" --mode "$mode" 2>"$out/$mode.log"
    grep -o 'Collected : [0-9]*' "$out/$mode.log" | grep -o '[0-9]*$' >"$out/$mode.ir"
done
none=$(cat "$out/none.ir"); crypto=$(cat "$out/crypto.ir"); verify=$(cat "$out/verify.ir")
echo "instructions per check ($count checks): total $(( (verify - none) / count )), crypto" \
    "$(( (crypto - none) / count )), the rest $(( (verify - crypto) / count ))"
rm -rf "$out"
