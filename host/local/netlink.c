/* Minimal rtnetlink client (see netlink.h).  One request per socket, acknowledged (NLM_F_ACK), so an error comes
 * back as the kernel's errno. */
#include "local/netlink.h"

#include <errno.h>
#include <net/if.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct req {
    struct nlmsghdr h;
    char data[1024];
} req;

static struct rtattr *attr_add(req *r, unsigned short type, const void *data, size_t len) {
    struct nlmsghdr *h = &r->h;
    size_t off = NLMSG_ALIGN(h->nlmsg_len) - sizeof r->h;
    struct rtattr *a = (struct rtattr *)(void *)(r->data + off);
    a->rta_type = type;
    a->rta_len = (unsigned short)RTA_LENGTH(len);
    if (len) memcpy(RTA_DATA(a), data, len);
    h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
    return a;
}
static void attr_end(req *r, struct rtattr *nest) {
    nest->rta_len = (unsigned short)((char *)&r->h + r->h.nlmsg_len - (char *)nest);
}

static int transact(struct nlmsghdr *h) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) return -errno;
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    h->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
    h->nlmsg_seq = 1;
    int rc;
    if (sendto(fd, h, h->nlmsg_len, 0, (struct sockaddr *)&sa, sizeof sa) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    char buf[4096];
    rc = -EPROTO;
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            rc = -errno;
            break;
        }
        struct nlmsghdr *r = (struct nlmsghdr *)buf;
        int done = 0;
        for (; NLMSG_OK(r, (unsigned)n); r = NLMSG_NEXT(r, n)) {
            if (r->nlmsg_type == NLMSG_ERROR) {
                struct nlmsgerr *e = NLMSG_DATA(r);
                rc = e->error; /* 0 is the acknowledgement */
                done = 1;
                break;
            }
        }
        if (done) break;
    }
    close(fd);
    return rc;
}

static void link_msg(req *r, int flags, int index) {
    memset(r, 0, sizeof *r);
    r->h.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
    r->h.nlmsg_type = RTM_NEWLINK;
    r->h.nlmsg_flags = (unsigned short)flags;
    struct ifinfomsg *ifi = NLMSG_DATA(&r->h);
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_index = index;
}

int shx_nl_add_bridge(const char *name) {
    req r;
    link_msg(&r, NLM_F_CREATE | NLM_F_EXCL, 0);
    attr_add(&r, IFLA_IFNAME, name, strlen(name) + 1);
    struct rtattr *li = attr_add(&r, IFLA_LINKINFO, NULL, 0);
    attr_add(&r, IFLA_INFO_KIND, "bridge", 6);
    attr_end(&r, li);
    return transact(&r.h);
}

int shx_nl_add_veth(const char *name, const char *peer, pid_t peer_pid) {
    req r;
    link_msg(&r, NLM_F_CREATE | NLM_F_EXCL, 0);
    attr_add(&r, IFLA_IFNAME, name, strlen(name) + 1);
    struct rtattr *li = attr_add(&r, IFLA_LINKINFO, NULL, 0);
    attr_add(&r, IFLA_INFO_KIND, "veth", 4);
    struct rtattr *data = attr_add(&r, IFLA_INFO_DATA, NULL, 0);
    struct rtattr *pi = attr_add(&r, VETH_INFO_PEER, NULL, 0);
    /* the peer's own ifinfomsg, then its attributes */
    r.h.nlmsg_len += NLMSG_ALIGN(sizeof(struct ifinfomsg));
    attr_add(&r, IFLA_IFNAME, peer, strlen(peer) + 1);
    uint32_t pid = (uint32_t)peer_pid;
    attr_add(&r, IFLA_NET_NS_PID, &pid, sizeof pid);
    attr_end(&r, pi);
    attr_end(&r, data);
    attr_end(&r, li);
    return transact(&r.h);
}

int shx_nl_link_up(const char *name) {
    unsigned idx = if_nametoindex(name);
    if (!idx) return -errno;
    req r;
    link_msg(&r, 0, (int)idx);
    struct ifinfomsg *ifi = NLMSG_DATA(&r.h);
    ifi->ifi_flags = IFF_UP;
    ifi->ifi_change = IFF_UP;
    return transact(&r.h);
}

int shx_nl_set_master(const char *name, const char *master) {
    unsigned idx = if_nametoindex(name), midx = if_nametoindex(master);
    if (!idx || !midx) return -ENODEV;
    req r;
    link_msg(&r, 0, (int)idx);
    uint32_t m = midx;
    attr_add(&r, IFLA_MASTER, &m, sizeof m);
    return transact(&r.h);
}

int shx_nl_add_ipv4(const char *name, uint32_t addr, int prefixlen) {
    unsigned idx = if_nametoindex(name);
    if (!idx) return -errno;
    req r;
    memset(&r, 0, sizeof r);
    r.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
    r.h.nlmsg_type = RTM_NEWADDR;
    r.h.nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
    struct ifaddrmsg *ifa = NLMSG_DATA(&r.h);
    ifa->ifa_family = AF_INET;
    ifa->ifa_prefixlen = (unsigned char)prefixlen;
    ifa->ifa_index = idx;
    attr_add(&r, IFA_LOCAL, &addr, 4);
    attr_add(&r, IFA_ADDRESS, &addr, 4);
    return transact(&r.h);
}
