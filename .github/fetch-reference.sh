#!/usr/bin/env bash
# Outside this project's own machines, ../shared/reference (HardKernel's boot files and the C2
# kernel config the tests read) is not laid out beside the checkout: fetch the same files from
# their pinned public sources (see SOURCES.md there) and check them against known sha256 sums.
set -euo pipefail
dest=${1:-"$(cd "$(dirname "$0")/../.." && pwd)/shared/reference"}
raw=https://raw.githubusercontent.com
c2=$raw/mdrjr/c2_bootini/bab3d39d393af200de737d0203fbf9e3f250dbca
c4=$raw/mdrjr/c4_bootini/613e629ff0bc049b399c0e76977ee754aad1444e
kali=$raw/offensive-security/kali-arm-build-scripts/bb2446989eb7b07b36854be079fe331dd4ad26e7
while read -r sum path url; do
  mkdir -p "$dest/$(dirname "$path")"
  [ -f "$dest/$path" ] || curl -fsSL --retry 3 -o "$dest/$path" "$url"
  echo "$sum  $dest/$path" | sha256sum -c --quiet
done <<LIST
3287d2159028015ad68ec173a99c98107bd62404cf7a83168d579456d7fff496 odroid-c2/boot.ini $c2/boot.ini
de3e8034b513e20c7702752e04f44b45a44488560a9716258e73df06965aec95 odroid-c2/boot.ini.default $c2/boot.ini.default
24c00185d58e2bc885809dc9af49ee35af95d7957e0e6568811ce837c345e6f6 odroid-c2/kernel-3.16.60.config $kali/kernel-configs/odroid-c2-3.16.config
4dd74cc5e125461b18518678ff7940aff30210067c7ccf2ae96a7b4dd20737f6 odroid-c4/boot.ini $c4/boot.ini
8cb523de9101a61ad932a177ab6043d7c1fc8c30111166af61a3fb1879512974 odroid-c4/config.ini $c4/config.ini
LIST
echo "reference files in $dest"
