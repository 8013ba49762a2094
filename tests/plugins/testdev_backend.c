/* Test plugin: a device backend built against the current (1.1) header, named "testdev", for black-box tests of the
 * backend ABI and of the host's fallbacks.  Not hardware: it makes devices up.  $TESTDEV_MODE picks what it does:
 *   ok (default)  two GPUs, testdev-0 and testdev-1; $TESTDEV_FAIL=<index> marks that one FAILED; asks for
 *                 TESTDEV_DEFAULT=from-backend in the job's environment
 *   absent        probe() finds nothing
 *   error         probe() fails with a message
 *   crash         list() dies of SIGSEGV after reporting a device
 *   hang          list() sleeps for 30 s (a hung driver)
 * $TESTDEV_VISIBLE=<index> makes only that device visible; isolate() gives rank r device r as TESTDEV_VISIBLE. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <smhost/device.h>

static const smh_host_api *H;

static smh_status td_init(const smh_host_api *host, void **state, char *err, size_t errlen) {
    if (!SMH_HOST_HAS(host, device_add)) {
        snprintf(err, errlen, "testdev: the host table has no device_add");
        return SMH_E_UNSUPPORTED;
    }
    H = host;
    *state = NULL;
    return SMH_OK;
}

static const char *mode(void) {
    const char *m = getenv("TESTDEV_MODE");
    return m && *m ? m : "ok";
}

static smh_status td_probe(void *state, char *err, size_t errlen) {
    (void)state;
    if (!strcmp(mode(), "absent")) {
        snprintf(err, errlen, "testdev: no test devices today");
        return SMH_E_NOTFOUND;
    }
    if (!strcmp(mode(), "error")) {
        snprintf(err, errlen, "testdev: libtestdev.so.1 cannot be loaded (a test double's error)");
        return SMH_E_FAIL;
    }
    return SMH_OK;
}

static smh_status td_list(void *state, smh_device_sink *sink, char *err, size_t errlen) {
    (void)state, (void)err, (void)errlen;
    const char *fail = getenv("TESTDEV_FAIL"), *vis = getenv("TESTDEV_VISIBLE");
    for (int i = 0; i < 2; i++) {
        smh_device d;
        memset(&d, 0, sizeof d);
        d.struct_size = sizeof d;
        d.device_class = SMH_DEVICE_GPU;
        d.index = i;
        d.parent = -1;
        d.memory_total = (uint64_t)(i + 1) << 30;
        snprintf(d.uuid, sizeof d.uuid, "testdev-%d", i);
        snprintf(d.name, sizeof d.name, "Test Device %d", i);
        snprintf(d.pci_bus_id, sizeof d.pci_bus_id, "0000:0%d:00.0", i + 1);
        if (!vis || atoi(vis) == i) d.flags |= SMH_DEVICE_VISIBLE;
        if (fail && atoi(fail) == i) {
            d.health = SMH_HEALTH_FAILED;
            snprintf(d.reason, sizeof d.reason, "test double says it is broken");
        }
        H->device_add(sink, &d);
        if (!strcmp(mode(), "crash")) raise(SIGSEGV);
        if (!strcmp(mode(), "hang")) sleep(30);
    }
    H->device_set_info(sink, "driver_version", "0.0-test");
    H->device_set_env(sink, "TESTDEV_DEFAULT", "from-backend");
    return SMH_OK;
}

static smh_status td_isolate(void *state, const smh_device *devs, size_t n, int rank, int nranks, char *name,
                             size_t namelen, char *value, size_t valuelen) {
    (void)state, (void)nranks;
    if ((size_t)rank >= n) return SMH_E_RANGE;
    snprintf(name, namelen, "TESTDEV_VISIBLE");
    snprintf(value, valuelen, "%s", devs[rank].uuid);
    return SMH_OK;
}

static const smh_backend_ops td_ops = {.struct_size = sizeof(smh_backend_ops),
                                       .device_class = SMH_DEVICE_GPU,
                                       .probe = td_probe,
                                       .list = td_list,
                                       .isolate = td_isolate};

SMH_PLUGIN_DEFINE(.name = "testdev", .version = "0.1-test", .description = "test: a made-up device backend (ABI 1.1)",
                  .kind = SMH_KIND_BACKEND, .init = td_init, .backend = &td_ops)
