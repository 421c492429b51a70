#!/usr/bin/env bash
# Fails (listing the files) if any C++ source under src/, sim/ or tests/ differs from its
# clang-format output under the repository's .clang-format (LLVM base, 100 columns); passes
# otherwise.
# Usage: check_format.sh CLANG_FORMAT SOURCE_DIR
set -euo pipefail
clang_format=$1
cd "$2"
bad=0
while IFS= read -r f; do
  if ! "$clang_format" --dry-run --Werror "$f" >/dev/null 2>&1; then
    echo "not formatted: $f"
    bad=$((bad + 1))
  fi
done < <(find src sim tests -name '*.[ch]pp' | sort)
n=$(find src sim tests -name '*.[ch]pp' | wc -l)
echo "clang_format: $n files, $bad problems"
[ "$bad" -eq 0 ]
