#!/bin/sh
# Lines of code in each file: not blank, not `///`/`//!` doc comments, not inside a
# `#[cfg(test)]` module (from the attribute to the end of the file / matching brace).
for f in "$@"; do
  awk '
    /^[[:space:]]*#\[cfg\(test\)\]/ { skip = 1; depth = 0; started = 0; next }
    skip {
      n = gsub(/\{/, "{"); m = gsub(/\}/, "}");
      depth += n - m; if (n > 0) started = 1;
      if (started && depth <= 0) skip = 0;
      next
    }
    /^[[:space:]]*$/ { next }
    /^[[:space:]]*\/\/[\/!]/ { next }
    { c++ }
    END { printf "%6d %s\n", c, FILENAME }
  ' "$f"
done
