# Sourced by test_image.sh: the Debian mirror this machine's apt is configured with, so the image test uses
# whatever mirror or proxy the machine uses and the repository names no mirror host of its own.
#
#   apt_source_uri SUITE...   prints the URI of the first enabled `deb` source that lists one of the SUITEs
#                             (tried in the order given); returns 1 when none does
#
# It reads, in apt's order, $APT_ETC/sources.list, then $APT_ETC/sources.list.d/*.list and *.sources sorted by
# name (APT_ETC defaults to /etc/apt).  Both formats: one-line (`deb [opts] URI SUITE COMPONENT...`) and deb822
# stanzas (`Types:`, `URIs:`, `Suites:`, `Enabled:`).  Comments, deb-src entries, disabled stanzas and URIs
# debootstrap cannot use (anything but http, https and file) are skipped.

apt_source_files() {
    local etc=${APT_ETC:-/etc/apt} f
    [ -f "$etc/sources.list" ] && printf '%s\n' "$etc/sources.list"
    for f in "$etc"/sources.list.d/*; do
        case $f in *.list | *.sources) [ -f "$f" ] && printf '%s\n' "$f" ;; esac
    done
    return 0
}

# Prints "URI SUITE" for every enabled deb entry, in apt's order.
apt_source_entries() {
    local f
    apt_source_files | while IFS= read -r f; do
        case $f in
        *.sources)
            awk '
                function flush(   i, t, u, s, nt, nu, ns, deb) {
                    nt = split(types, t); nu = split(uris, u); ns = split(suites, s); deb = 0
                    for (i = 1; i <= nt; i++) if (t[i] == "deb") deb = 1
                    if (deb && tolower(enabled) != "no")
                        for (i = 1; i <= ns; i++) if (nu) print u[1], s[i]
                    types = uris = suites = enabled = field = ""
                }
                /^#/ { next }
                /^[ \t]*$/ { flush(); next }
                /^[ \t]/ { # a continuation line of the field above
                    if (field == "types") types = types " " $0
                    else if (field == "uris") uris = uris " " $0
                    else if (field == "suites") suites = suites " " $0
                    next
                }
                {
                    name = tolower($0); sub(/:.*/, "", name)
                    value = $0; sub(/^[^:]*:[ \t]*/, "", value)
                    field = name
                    if (name == "types") types = value
                    else if (name == "uris") uris = value
                    else if (name == "suites") suites = value
                    else if (name == "enabled") enabled = value
                }
                END { flush() }' "$f"
            ;;
        *)
            awk '
                { sub(/#.*/, "") }
                $1 != "deb" { next }
                {
                    i = 2
                    if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ } # [ options ]
                    if (i + 1 <= NF) print $i, $(i + 1)
                }' "$f"
            ;;
        esac
    done | awk '$1 ~ /^(https?|file):/'
}

apt_source_uri() {
    local entries suite uri
    entries=$(apt_source_entries)
    for suite in "$@"; do
        uri=$(printf '%s\n' "$entries" | awk -v s="$suite" '$2 == s { print $1; exit }')
        [ -n "$uri" ] && { printf '%s\n' "$uri"; return 0; }
    done
    return 1
}
