# Sourced by scripts/install and scripts/package: checks a file against its SHA256SUMS entry.
# Hash the copy that will be installed or packaged, not the source it came from, so what is
# checked is what ships.

# check_sum SUMS NAME FILE: exits 1 with a message naming NAME unless SUMS has exactly one
# SHA-256 entry for NAME (`HASH  NAME` or `HASH *NAME`) and FILE has that hash.
check_sum() {
    local sums="$1" name="$2" file="$3" entries actual
    [ -f "$sums" ] || sums_fail "$sums not found: refusing unverified binaries (scripts/build-static writes it)"
    entries="$(awk -v n="$name" '$2 == n || $2 == "*" n { print $1 }' "$sums")"
    [ -n "$entries" ] || sums_fail "$sums has no entry for $name: refusing it"
    [ "$(printf '%s\n' "$entries" | wc -l)" = 1 ] || sums_fail "$sums lists $name more than once: refusing it"
    [[ "$entries" =~ ^[0-9a-f]{64}$ ]] || sums_fail "$sums: the entry for $name is not a SHA-256: refusing it"
    actual="$(sha256sum <"$file" | cut -d' ' -f1)"
    [ "$actual" = "$entries" ] ||
        sums_fail "$name: checksum mismatch: $sums says $entries, the file is $actual: refusing it"
}

sums_fail() {
    echo "error: $*" >&2
    exit 1
}
