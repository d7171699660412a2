#!/usr/bin/env bash
# Lower layers never include higher ones: checks every #include "<layer>/..." in src/.
set -euo pipefail
cd "$(dirname "$0")/../src"
order=(core quant ops memory formats tokenizer model policy schedule engine serve dist cli)
rank() { local i; for i in "${!order[@]}"; do [ "${order[$i]}" = "$1" ] && echo "$i" && return; done; echo -1; }
bad=0
for layer in "${order[@]}"; do
  [ -d "$layer" ] || continue
  mine=$(rank "$layer")
  while IFS= read -r line; do
    file=${line%%:*}
    inc=$(echo "$line" | sed -E 's/.*#include "([a-z_]+)\/.*/\1/')
    r=$(rank "$inc")
    [ "$r" -lt 0 ] && continue
    # ops/cuda may use ops; same layer is fine.
    if [ "$r" -gt "$mine" ]; then
      echo "layering violation: $file includes $inc/ (a higher layer than $layer/)"
      bad=1
    fi
  done < <(grep -rn '#include "[a-z_]*/' "$layer" || true)
done
[ "$bad" -eq 0 ] && echo "layers: ok"
exit "$bad"
