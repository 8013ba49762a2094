/* Multi-host jobs wait until every host name resolves (contract section 6; the toolkit retries for 15 min). */
#ifndef SHX_DNS_H
#define SHX_DNS_H
#include <stddef.h>
/* Returns 0 when all resolve, else SHX_EXIT_UNAVAILABLE with err naming the first host that never resolved. */
int shx_dns_wait(const char *const *hosts, size_t n, int timeout_seconds, char *err, size_t errlen);
#endif
