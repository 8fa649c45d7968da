# What work the session's workspace holds, for paude's unfetched-work guard and rescue.
# paude runs it inside the agent container as `sh -c SCRIPT sh WORKSPACE MODE RESCUE_REPO`
# (MODE: report, status or rescue) and sends, on stdin, one commit id per line that the host
# has. `status` is a report that also carries paude-setup's state, so `paude status` needs
# one exec, not two.
#
# Output: NUL-terminated fields, `KEY VALUE` pairs, except that a path list is
# `KEY COUNT K NAME*K` (COUNT paths in all, the first K of them named). paude/work.py
# parses it. Names come from the agent and may hold any byte, so the whole stream passes
# through od: what arrives is hex, and a stream without its `end` record is an error.
#
# A report changes nothing: the objects it hashes go to a scratch folder. A rescue adds
# commits and refs/paude-rescue/* (or, for a workspace without git, RESCUE_REPO); the
# agent's working tree, index and branches stay as they are.

ws=$1
mode=$2
rescue_repo=$3
with_setup=no
if [ "$mode" = status ]; then mode=report; with_setup=yes; fi
t=$(mktemp -d) || exit 1
trap 'rm -rf "$t"' EXIT

# Each process costs a millisecond or two, and `paude status` waits for all of them: the
# helpers below use as few as they can (the agent image always has GNU coreutils and grep).
rec() { printf '%s\0%s\0' "$1" "$2"; }
# The NUL-terminated names in file $1 (git's -z lists end every name with a NUL).
nuls() { LC_ALL=C grep -acz '' < "$1"; }
paths() {  # KEY FILE: the count, then the first five names
    pn=$(nuls "$2")
    printf '%s\0%s\0%s\0' "$1" "$pn" "$((pn < 5 ? pn : 5))"
    head -z -n 5 "$2"
}
# Gitlinks (embedded repositories) of a tree, one `MODE TYPE ID<TAB>PATH` line each.
links() { git ls-tree -r -z "$1" | tr '\000\n' '\n\000' | grep -a '^160000 '; }
embedded() {  # the gitlinks of tree $2 (-: unreadable) that tree $1 does not have
    : > "$t/embedded"
    if [ "$2" != - ] && [ "$2" != "$1" ]; then
        if [ "$1" = "$empty" ]; then : > "$t/l0"; else links "$1" > "$t/l0"; fi
        links "$2" > "$t/l1"
        grep -axvFf "$t/l0" "$t/l1" | cut -f 2- | tr '\000\n' '\n\000' > "$t/embedded"
    fi
    paths embedded "$t/embedded"
}
# Commits reachable from $1 that no host commit reaches; - when $1 is not a commit.
count() {
    c=$(git rev-parse -q --verify "$1^{commit}" 2>/dev/null) || { echo -; return; }
    { echo "$c"; cat "$t/neg"; } | git rev-list --count --stdin || echo x
}
rescuer() {
    export GIT_AUTHOR_NAME="paude rescue" GIT_AUTHOR_EMAIL=rescue@paude.invalid
    export GIT_COMMITTER_NAME="paude rescue" GIT_COMMITTER_EMAIL=rescue@paude.invalid
}

in_git() {
    rec git yes
    { echo -; git cat-file --batch-check='%(objecttype) %(objectname)' \
        | sed -n 's/^commit //p'; } > "$t/known"
    sed -n 's/^[0-9a-f]*$/^&/p' "$t/known" > "$t/neg"
    git for-each-ref --format='%(objectname) %(refname)' > "$t/refs" || exit 1
    awk 'NR == FNR { k[$1]; next } { print (($1 in k) ? "k" : "u"), $0 }' \
        "$t/known" "$t/refs" > "$t/marked" || exit 1
    while read -r flag sha ref; do
        n=0
        [ "$flag" = u ] && n=$(count "$sha")
        rec ref "$sha $n $ref"
    done < "$t/marked"

    if h=$(git rev-parse -q --verify 'HEAD^{commit}' 2>/dev/null); then
        if git symbolic-ref -q HEAD > /dev/null; then
            rec head "branch $h 0"
        else
            rec head "detached $h $(count "$h")"
        fi
    else
        h=
        rec head "unborn - 0"
    fi
    git log -g --format=%H refs/stash -- > "$t/stash" 2> /dev/null || : > "$t/stash"
    i=0
    while read -r s; do
        rec stash "$i $s $(count "$s")"
        i=$((i + 1))
    done < "$t/stash"

    empty=$(git hash-object -t tree /dev/null) || exit 1
    base=$(git rev-parse -q --verify 'HEAD^{tree}' 2> /dev/null) || base=$empty
    index=$(git rev-parse --git-path index) || exit 1
    if [ "$mode" = report ]; then
        objects=$(cd "$(git rev-parse --git-path objects)" && pwd) || exit 1
        mkdir "$t/objects" || exit 1
        export GIT_OBJECT_DIRECTORY="$t/objects" GIT_ALTERNATE_OBJECT_DIRECTORIES="$objects"
    fi
    # The index and the working tree as trees, built in copies of the index. The copies
    # keep the index's mtime (cp -p): git re-reads a file changed in the same second as
    # the index was written only when the index looks no older than it, and a copy made
    # now would let it trust the recorded size and time and hash a stale file.
    cp -p "$index" "$t/index" 2> /dev/null
    itree=$(GIT_INDEX_FILE="$t/index" git write-tree 2> /dev/null) || itree=-
    cp -p "$index" "$t/wt" 2> /dev/null
    wtree=-
    if GIT_INDEX_FILE="$t/wt" git add -A --ignore-errors > /dev/null 2>&1; then
        wtree=$(GIT_INDEX_FILE="$t/wt" git write-tree) || wtree=-
    fi
    rec tree "head $base"
    rec tree "index $itree"
    rec tree "worktree $wtree"

    git --no-optional-locks status --porcelain=v1 -z --no-renames --untracked-files=no \
        --ignore-submodules=none > "$t/changed" || exit 1
    git ls-files -z --others --exclude-standard --directory --no-empty-directory \
        > "$t/untracked" || exit 1
    git ls-files -z --others --ignored --exclude-standard --directory --no-empty-directory \
        > "$t/ignored" || exit 1
    paths changed "$t/changed"
    paths untracked "$t/untracked"
    paths ignored "$t/ignored"
    embedded "$base" "$wtree"

    [ "$mode" = rescue ] || return 0
    git for-each-ref --format='%(refname)' refs/paude-rescue/ > "$t/old" || exit 1
    while read -r r; do git update-ref -d "$r" || exit 1; done < "$t/old"
    if [ "$wtree" = - ]; then
        echo "cannot read every file in $ws" >&2
        exit 1
    fi
    rescuer
    set --
    [ -n "$h" ] && set -- -p "$h"
    if [ "$wtree" != "$base" ]; then
        w=$(git commit-tree "$@" -m "paude rescue: the working tree of $ws" "$wtree") \
            && git update-ref refs/paude-rescue/worktree "$w" || exit 1
        rec rescued "worktree $w"
    fi
    if [ "$itree" != - ] && [ "$itree" != "$base" ] && [ "$itree" != "$wtree" ]; then
        x=$(git commit-tree "$@" -m "paude rescue: the staged changes (index) of $ws" \
            "$itree") && git update-ref refs/paude-rescue/index "$x" || exit 1
        rec rescued "index $x"
    fi
    i=0
    while read -r s; do
        if [ "$i" -gt 0 ]; then
            git update-ref "refs/paude-rescue/stash-$i" "$s" || exit 1
            rec rescued "stash-$i $s"
        fi
        i=$((i + 1))
    done < "$t/stash"
}

in_files() {
    rec git no
    # A rescue replaces the last one's repository; a report's scratch folder is new.
    if [ "$mode" = rescue ]; then g=$rescue_repo; rm -rf "$g" || exit 1; else g=$t/files.git; fi
    git init -q --bare "$g" || exit 1
    export GIT_DIR="$g" GIT_WORK_TREE="$ws" GIT_INDEX_FILE="$g/paude-index"
    tree=-
    if git add -A -f --ignore-errors > /dev/null 2>&1; then
        tree=$(git write-tree) || tree=-
    fi
    git ls-files -z > "$t/files" || exit 1
    rec tree "worktree $tree"
    paths files "$t/files"
    empty=$(git hash-object -t tree /dev/null) || exit 1
    embedded "$empty" "$tree"

    [ "$mode" = rescue ] || return 0
    if [ "$tree" = - ]; then
        echo "cannot read every file in $ws" >&2
        exit 1
    fi
    if [ "$tree" != "$empty" ]; then
        rescuer
        c=$(git commit-tree -m "paude rescue: the files of $ws" "$tree") \
            && git update-ref refs/paude-rescue/worktree "$c" || exit 1
        rec rescued "files $c"
    fi
}

main() {
    rec paude-work 1
    if ! cd "$ws" 2> /dev/null; then
        rec git missing
    # The top of a work tree: "true" and an empty prefix (a subfolder's would follow).
    elif [ "$(git rev-parse --is-inside-work-tree --show-prefix 2> /dev/null)" = true ]; then
        in_git
    else
        in_files
    fi
    if [ "$with_setup" = yes ]; then
        s=$(cd / && paude-setup state 2>&1)
        rec setup "$? $s"
    fi
    rec end ok
}

# stderr too may quote names: paude reads it as text, so it arrives as printable ASCII.
main 2> "$t/stderr" | od -An -v -tx1
tr -c '\11\12\40-\176' '?' < "$t/stderr" >&2
