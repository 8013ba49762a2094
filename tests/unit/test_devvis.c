/* Unit tests for plugins/common/devvis.h: the visibility variables as CUDA, the NVIDIA container runtime, ROCm and
 * the Neuron runtime read them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../plugins/common/devvis.h"

static void test_nvidia_all_none_void(void **state) {
    (void)state;
    dv_list l;
    dv_parse_nvidia(NULL, &l); /* unset: no runtime restriction */
    assert_true(l.all);
    assert_true(dv_visible(&l, 5, "GPU-x"));
    dv_parse_nvidia("all", &l);
    assert_true(l.all);
    const char *none[] = {"none", "void", ""};
    for (int i = 0; i < 3; i++) {
        dv_parse_nvidia(none[i], &l);
        assert_false(l.all);
        assert_int_equal(l.n, 0);
        assert_false(dv_visible(&l, 0, "GPU-x"));
    }
}

static void test_nvidia_list_indices_and_uuids(void **state) {
    (void)state;
    dv_list l;
    dv_parse_nvidia(" 0, 2 ,GPU-8d3c1a2b-0000-1111-2222-333344445555,MIG-77aa", &l);
    assert_int_equal(l.n, 4);
    assert_string_equal(l.item[0], "0");
    assert_string_equal(l.item[1], "2");
    assert_int_equal(dv_index_entries(&l), 2);
    assert_true(dv_visible(&l, 2, NULL));
    assert_false(dv_visible(&l, 1, "GPU-ffff"));
    assert_true(dv_visible(&l, 7, "GPU-8d3c1a2b-0000-1111-2222-333344445555"));
    assert_true(dv_visible(&l, 7, "MIG-77aa0000-1111"));
}

static void test_cuda_unset_and_empty(void **state) {
    (void)state;
    dv_list l;
    dv_parse_cuda(NULL, &l);
    assert_true(l.all);
    dv_parse_cuda("", &l); /* set but empty: CUDA sees no device */
    assert_false(l.all);
    assert_int_equal(l.n, 0);
    assert_false(dv_visible(&l, 0, "GPU-a"));
}

static void test_cuda_stops_at_first_invalid(void **state) {
    (void)state;
    dv_list l;
    dv_parse_cuda("0,1,-1,2", &l);
    assert_int_equal(l.n, 2);
    assert_true(dv_visible(&l, 1, NULL));
    assert_false(dv_visible(&l, 2, NULL));
    dv_parse_cuda("all", &l); /* the runtime's word means nothing to CUDA: no device */
    assert_int_equal(l.n, 0);
    assert_false(l.all);
    dv_parse_cuda("none", &l);
    assert_int_equal(l.n, 0);
    dv_parse_cuda("1,1,2", &l); /* a repeat ends the list */
    assert_int_equal(l.n, 1);
    dv_parse_cuda("3,GPU-,4", &l); /* "GPU-" alone is no UUID */
    assert_int_equal(l.n, 1);
}

static void test_cuda_uuid_prefixes(void **state) {
    (void)state;
    dv_list l;
    dv_parse_cuda("GPU-8d3c,2", &l);
    assert_int_equal(l.n, 2);
    assert_true(dv_visible(&l, 0, "GPU-8d3c1a2b-0000"));
    assert_false(dv_visible(&l, 0, "GPU-9d3c1a2b-0000"));
    assert_true(dv_visible(&l, 2, "GPU-0000"));
    assert_false(dv_visible(&l, 1, ""));
}

static void test_neuron_cores(void **state) {
    (void)state;
    unsigned char set[64];
    assert_int_equal(dv_parse_cores(NULL, set, 64), 0);
    assert_int_equal(set[0] + set[63], 2);
    assert_int_equal(dv_parse_cores("0-3,6", set, 64), 0);
    int n = 0;
    for (int i = 0; i < 64; i++) n += set[i];
    assert_int_equal(n, 5);
    assert_true(set[3] && set[6] && !set[4]);
    assert_int_equal(dv_parse_cores(" 1 , 2 - 3 ", set, 64), 0);
    assert_true(set[1] && set[2] && set[3] && !set[0]);
    assert_int_equal(dv_parse_cores("5", set, 64), 0);
    assert_true(set[5] && !set[4]);
    assert_int_equal(dv_parse_cores("3-1", set, 64), -1);
    assert_int_equal(dv_parse_cores("x", set, 64), -1);
    assert_int_equal(dv_parse_cores("0-", set, 64), -1);
    assert_int_equal(dv_parse_cores("64", set, 64), -1);
    assert_int_equal(dv_parse_cores("1;2", set, 64), -1);
}

static void test_share_and_append(void **state) {
    (void)state;
    int first = -1, per = -1;
    assert_int_equal(dv_share(8, 3, 4, &first, &per), 0);
    assert_int_equal(first, 6);
    assert_int_equal(per, 2);
    assert_int_equal(dv_share(7, 2, 3, &first, &per), 0); /* the odd unit out is nobody's */
    assert_int_equal(first, 4);
    assert_int_equal(per, 2);
    assert_int_equal(dv_share(2, 0, 3, &first, &per), -1); /* fewer units than ranks */
    assert_int_equal(dv_share(4, 4, 4, &first, &per), -1);
    assert_int_equal(dv_share(4, -1, 4, &first, &per), -1);
    assert_int_equal(dv_share(4, 0, 0, &first, &per), -1);
    char v[12] = "";
    size_t used = 0;
    assert_int_equal(dv_append(v, sizeof v, &used, "GPU-a"), 0);
    assert_int_equal(dv_append(v, sizeof v, &used, "3"), 0);
    assert_string_equal(v, "GPU-a,3");
    assert_int_equal(dv_append(v, sizeof v, &used, "long"), -1); /* ",long" would need 13 bytes with the NUL */
    assert_string_equal(v, "GPU-a,3");
    assert_int_equal(dv_append(v, sizeof v, &used, "xyz"), 0);
    assert_string_equal(v, "GPU-a,3,xyz");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nvidia_all_none_void),
        cmocka_unit_test(test_nvidia_list_indices_and_uuids),
        cmocka_unit_test(test_cuda_unset_and_empty),
        cmocka_unit_test(test_cuda_stops_at_first_invalid),
        cmocka_unit_test(test_cuda_uuid_prefixes),
        cmocka_unit_test(test_neuron_cores),
        cmocka_unit_test(test_share_and_append),
    };
    return cmocka_run_group_tests_name("devvis", tests, NULL, NULL);
}
