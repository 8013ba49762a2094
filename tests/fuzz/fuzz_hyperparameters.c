/* hyperparameters.json -> the program's argv and SM_* environment, as train builds them. */
#include <string.h>

#include "core/pyjson.h"
#include "fuzz.h"
#include "job/envsize.h"
#include "job/hyperparameters.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_quiet();
    pyj_error err;
    pyj_value *file = pyj_parse((const char *)data, size, &err);
    if (!file) return 0;
    if (file->type != PYJ_DICT) {
        pyj_free(file);
        return 0;
    }
    pyj_value *decoded = shx_hp_decode(file), *user = NULL, *framework = NULL;
    shx_hp_split(decoded, &user, &framework);
    char *what = NULL;
    if (shx_hp_find_nul(user, &what)) {
        free(what);
    } else {
        shx_strvec argv = {0}, env = {0};
        shx_hp_to_argv(user, &argv);
        for (size_t i = 0; i < user->u.dict.n; i++) {
            char *name = shx_env_name("SM_HP_", user->u.dict.keys[i].s), *val = shx_env_value(user->u.dict.vals[i]);
            FUZZ_CHECK(!strchr(name, '='), "an environment name holds '=': %s", name);
            shx_strvec_take(&env, shx_xasprintf("%s=%s", name, val));
            free(name), free(val);
        }
        size_t before = env.n;
        shx_env_dedupe(&env);
        FUZZ_CHECK(env.n <= before, "dedupe grew the environment");
        for (size_t i = 0; i + 1 < env.n; i++) FUZZ_CHECK(env.v[i] != NULL, "a hole in the environment");
        char msg[1024];
        shx_exec_size_check((const char *const *)argv.v, (const char *const *)env.v, msg, sizeof msg);
        shx_strvec_free(&argv), shx_strvec_free(&env);
    }
    pyj_free(user), pyj_free(framework), pyj_free(decoded), pyj_free(file);
    return 0;
}
