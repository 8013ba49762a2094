/* Hyperparameters: decoding, the framework-parameter split and the argv mapping (contract section 2). */
#ifndef SHX_HYPERPARAMETERS_H
#define SHX_HYPERPARAMETERS_H
#include "core/pyjson.h"
#include "core/util.h"

/* Decode hyperparameters.json (a dict): each string value is parsed as JSON; when that fails the raw string is
 * the value; non-string values pass unchanged.  Returns a new dict in file order. */
pyj_value *shx_hp_decode(const pyj_value *file_dict);

/* Split decoded hyperparameters: *user gets every key not starting with "sagemaker_" and not
 * "_tuning_objective_metric" / "default_user_module_name"; *framework gets the removed keys that are not in
 * the toolkit's fixed list.  Both are new dicts in file order. */
void shx_hp_split(const pyj_value *decoded, pyj_value **user, pyj_value **framework);

/* The user argv (without the program): sorted keys, "--key"/"-k"/"", values as Python str() (top-level
 * None -> "", a dict -> "k=v,k2=v2" with sorted keys and str() of each value).  Appends to out. */
void shx_hp_to_argv(const pyj_value *user, shx_strvec *out);

/* Python cannot pass a NUL character in argv or the environment (the toolkit dies with "embedded null byte").
 * Returns 1 and sets *what to repr() of the first user key whose argv/env text would hold one (the key itself,
 * a top-level string value, or a key or string value of a top-level dict), 0 when none.  Caller frees *what. */
int shx_hp_find_nul(const pyj_value *user, char **what);

/* The value for the environment (contract section 3): a string as is, None -> "", else compact sorted JSON.
 * Caller frees. */
char *shx_env_value(const pyj_value *v);

/* The environment name for a key: prefix + key upper-cased (Python's str.upper()), other characters kept. */
char *shx_env_name(const char *prefix, const char *key);

#endif
