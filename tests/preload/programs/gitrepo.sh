#!/usr/bin/env bash
# gitrepo.sh DIR [scale]: a generated repository with deterministic history:
# commits, branches, a merge, then gc and fsck. Prints what must not depend
# on the allocator (commit ids, object counts, fsck's verdict).
set -eu
dir=$1; scale=${2:-1}
n=$(awk -v s="$scale" 'BEGIN { printf "%d", 60 * s }')
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.invalid GIT_COMMITTER_NAME=t
export GIT_COMMITTER_EMAIL=t@example.invalid GIT_CONFIG_NOSYSTEM=1 HOME=$dir
rm -rf "$dir"; mkdir -p "$dir/r"; cd "$dir/r"
git init -q -b main .
git config pack.threads 1
for i in $(seq 1 "$n"); do
  export GIT_AUTHOR_DATE="@$((1700000000 + i)) +0000" GIT_COMMITTER_DATE="@$((1700000000 + i)) +0000"
  mkdir -p "d$((i % 7))"
  for j in 1 2 3; do
    seq "$i" "$((i * j + 200))" | sed "s/\$/ line $j of commit $i/" >"d$((i % 7))/f$j.txt"
  done
  printf '%s\n' "commit $i" >>log.txt
  git add -A
  git commit -q -m "commit $i"
  if [ "$i" -eq "$((n / 2))" ]; then git branch side; fi
done
git checkout -q side
export GIT_AUTHOR_DATE="@1800000000 +0000" GIT_COMMITTER_DATE="@1800000000 +0000"
echo side >side.txt; git add side.txt; git commit -q -m side
git checkout -q main
git merge -q --no-edit side
git log --format='%H %s' | md5sum
git gc -q --aggressive
git fsck --full --strict 2>&1 && echo "fsck ok"
git count-objects -v | grep -E '^(count|in-pack|packs|garbage):'
git rev-list --all --objects | wc -l
git log -p --stat | md5sum
