/* The few rtnetlink requests the local cluster needs (see cluster.h): a bridge, veth pairs whose peer is created
 * in another process's network namespace, links up, a port's master, an IPv4 address.  Every call acts on the
 * calling process's current network namespace.  Returns 0 or -errno (the kernel's answer). */
#ifndef SHX_NETLINK_H
#define SHX_NETLINK_H
#include <stdint.h>
#include <sys/types.h>

int shx_nl_add_bridge(const char *name);
/* A veth pair: `name` here, `peer` created directly in the network namespace of process peer_pid. */
int shx_nl_add_veth(const char *name, const char *peer, pid_t peer_pid);
int shx_nl_link_up(const char *name);
int shx_nl_set_master(const char *name, const char *master);
/* addr in network byte order, e.g. inet_addr("10.0.0.2") */
int shx_nl_add_ipv4(const char *name, uint32_t addr, int prefixlen);
#endif
