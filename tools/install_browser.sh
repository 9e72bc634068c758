#!/bin/sh
# A headless Chromium for the one test that needs a browser: tests/integration/test_report_browser.py renders the
# HTML incident report, takes a screenshot and prints it to PDF.
#
# What it installs: Debian's `chromium-headless-shell` (the headless browser alone: no GTK, CUPS or desktop
# integration), with --no-install-recommends, and nothing else. It never upgrades an installed package: when the
# package would need one upgraded (a library newer than the one installed), it stops and names them.
# When a headless Chromium is already there ($RESCIND_CHROMIUM, chromium-headless-shell or chromium), it does nothing.
set -eu

PACKAGE="chromium-headless-shell"
WHY="the HTML report's browser test (tests/integration/test_report_browser.py) needs a headless Chromium"

for browser in ${RESCIND_CHROMIUM:-} /usr/bin/chromium-headless-shell /usr/bin/chromium; do
    if [ -x "$browser" ]; then
        echo "install_browser: $WHY: $browser is there, nothing to install" >&2
        exit 0
    fi
done

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser: $WHY, and apt-get is not available: install a headless Chromium and set RESCIND_CHROMIUM to it" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive

echo "install_browser: $WHY; installing Debian's $PACKAGE (apt-get, --no-install-recommends, no upgrades)" >&2
$SUDO apt-get update -qq

# The plan, simulated: "Inst name [installed version] (new version ...)" is an upgrade, "Inst name (...)" is new.
plan=$(LC_ALL=C apt-get install --simulate --no-install-recommends --no-upgrade "$PACKAGE")
upgrades=$(printf '%s\n' "$plan" | awk '/^Inst / && $3 ~ /^\[/ {print $2}' | tr '\n' ' ')
if [ -n "$upgrades" ]; then
    echo "install_browser: not installing: $PACKAGE would upgrade installed packages ($upgrades)." >&2
    echo "install_browser: install it yourself if you accept that (apt-get install --no-install-recommends $PACKAGE)," >&2
    echo "install_browser: or set RESCIND_CHROMIUM to a headless Chromium; the browser test is skipped until then." >&2
    exit 1
fi
new=$(printf '%s\n' "$plan" | awk '/^Inst / {print $2}' | tr '\n' ' ')
count=$(printf '%s\n' "$plan" | awk '/^Inst / {n++} END {print n + 0}')
bytes=$(LC_ALL=C apt-get install --print-uris -qq --no-install-recommends --no-upgrade "$PACKAGE" |
    awk '{total += $3} END {print total + 0}')
echo "install_browser: $count new package(s), $((bytes / 1048576)) MB to download: $new" >&2

$SUDO apt-get install -y -q --no-install-recommends --no-upgrade "$PACKAGE"

if [ ! -x /usr/bin/chromium-headless-shell ]; then
    echo "install_browser: apt-get finished but /usr/bin/chromium-headless-shell is missing" >&2
    exit 1
fi
echo "install_browser: installed /usr/bin/chromium-headless-shell" >&2
