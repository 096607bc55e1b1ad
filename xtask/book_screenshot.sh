#!/usr/bin/env bash
# Screenshots of the built book opened from file:// with the network off, to look at: does the
# math render offline? (docs/book.toml and xtask/src/book.rs say how it is served.) Not run by
# CI; rerun it after touching docs/theme/, book.toml or the MathJax pin.
#
#   xtask/book_screenshot.sh [OUT_DIR] [PAGE#ANCHOR ...]
#
# OUT_DIR defaults to target/book-screenshots; the pages default to formula-heavy places of
# chapters 2, 3 and 12. Each page gives OUT_DIR/<page>_<anchor>.png (1400×1000, sidebar
# included) and a line of the table: MathJax's typeset formulas (mjx-container), TeX errors
# (mjx-merror), and delimiters left raw outside code in the page's <main>; the script fails
# when a page has no typeset formula, a TeX error or raw delimiters.
#
# Needs: Debian's chromium (`apt-get install -y chromium`), and `unshare -n` (util-linux; as
# root, or with unprivileged user namespaces, where `unshare -rn` is used instead), which runs
# Chromium in a network namespace with no interface but a downed loopback: nothing can be
# fetched. Chromium's flags are the ones a headless root Chromium needs on these machines
# (/work/.library/env/machines/rust.md); --host-resolver-rules also makes every name resolve
# to nothing, for a machine where unshare is not allowed.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-target/book-screenshots}
shift || true
pages=("$@")
if [ ${#pages[@]} -eq 0 ]; then
    pages=(
        "02-scaled-dot-product-attention.html#the-variance-of-a-dot-product"
        "02-scaled-dot-product-attention.html#log-sum-exp"
        "03-flash-attention.html#merging-partial-softmaxes"
        "03-flash-attention.html#standard-attention-thetand--n2"
        "12-performance-tuning.html"
    )
fi

chromium=$(command -v chromium || command -v chromium-browser || true)
[ -n "$chromium" ] || { echo "chromium is missing: apt-get install -y chromium" >&2; exit 1; }
if [ "$(id -u)" = 0 ]; then offline=(unshare -n); else offline=(unshare -rn); fi
"${offline[@]}" true || { echo "\`${offline[*]}\` is not allowed here: no way to cut the network" >&2; exit 1; }

cargo xtask book
mkdir -p "$out"
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT

browse() { # browse URL ARGS...: headless Chromium with no network, waiting 20 s of page time
    local url=$1
    shift
    "${offline[@]}" "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --host-resolver-rules="MAP * ~NOTFOUND" --user-data-dir="$profile" \
        --hide-scrollbars --window-size=1400,1000 --virtual-time-budget=20000 "$@" "$url" 2>/dev/null
}

book=$(pwd)/docs/book
status=0
printf '%-68s %8s %7s %5s\n' page typeset errors raw
for page in "${pages[@]}"; do
    name=$(echo "$page" | tr '#/' '__' | sed 's/\.html//')
    # Headless Chromium screenshots a page opened at #anchor blank, so the page is framed, in a
    # page of the viewport's size, and the frame scrolls to the anchor.
    frame="$profile/$name.html"
    printf '<!DOCTYPE html><body style="margin:0"><iframe src="%s" style="border:0;width:1400px;height:1000px"></iframe>' \
        "file://$book/$page" >"$frame"
    browse "file://$frame" --screenshot="$out/$name.png" >/dev/null
    counts=$(browse "file://$book/${page%%#*}" --dump-dom | python3 -c '
import re, sys
dom = sys.stdin.read()
main = dom[dom.find("<main"):dom.find("</main>")]
prose = re.sub(r"<(pre|code|script|mjx-container)\b.*?</\1>", "", main, flags=re.S)
raw = sum(prose.count(d) for d in ("\\(", "\\)", "\\[", "\\]"))
print(main.count("<mjx-container"), main.count("<mjx-merror"), raw)')
    read -r typeset errors raw <<<"$counts"
    printf '%-68s %8s %7s %5s\n' "$page" "$typeset" "$errors" "$raw"
    if [ "$typeset" = 0 ] || [ "$errors" != 0 ] || [ "$raw" != 0 ]; then status=1; fi
done
echo "screenshots in $out/"
exit $status
