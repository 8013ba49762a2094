/* The pyjson parser and printers: whatever parses must print as JSON that parses back to the same value
 * (json.dumps and repr agree after the round trip), and nothing may crash or leak. */
#include <string.h>

#include "core/pyjson.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_quiet();
    pyj_error err;
    pyj_value *v = pyj_parse((const char *)data, size, &err);
    if (!v) return 0;
    char *d1 = pyj_dumps(v, 0), *sorted = pyj_dumps(v, 1), *r1 = pyj_repr(v), *s1 = pyj_str_of(v);
    pyj_value *v2 = pyj_parse(d1, strlen(d1), &err);
    FUZZ_CHECK(v2, "json.dumps output does not parse back (%s): %.300s", err.msg, d1);
    char *d2 = pyj_dumps(v2, 0), *r2 = pyj_repr(v2);
    FUZZ_CHECK(!strcmp(d1, d2), "dumps(parse(dumps(v))) != dumps(v): %.300s vs %.300s", d1, d2);
    FUZZ_CHECK(!strcmp(r1, r2), "repr changed through a JSON round trip: %.300s vs %.300s", r1, r2);
    pyj_value *c = pyj_copy(v);
    char *d3 = pyj_dumps(c, 1);
    FUZZ_CHECK(!strcmp(sorted, d3), "a copy prints differently: %.300s vs %.300s", sorted, d3);
    free(d1), free(d2), free(d3), free(sorted), free(r1), free(r2), free(s1);
    pyj_free(v), pyj_free(v2), pyj_free(c);
    return 0;
}
