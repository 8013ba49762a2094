/* requirements.txt in the code dir is installed with `python3 -m pip` before the program runs, for every
 * program kind (contract section 4, "smhost differs"). Runs in the job process. */
#ifndef SHX_REQUIREMENTS_H
#define SHX_REQUIREMENTS_H
#include <stddef.h>
/* Returns 0 (installed, or no requirements.txt), else an exit code with err filled with an
 * "InstallRequirementsError" message carrying pip's last lines.  envp is the job's environment (PIP_* honoured);
 * break_system_packages handles Debian's externally-managed marker (PIP_BREAK_SYSTEM_PACKAGES=1). */
int shx_requirements_install(const char *code_dir, const char *const *envp, int break_system_packages, char *err,
                             size_t errlen);
/* envp plus pip's settings for unattended use (the job's own values win); the strings stay envp's.  Free the
 * array only.  Also behind the host API's pip_environ(). */
const char **shx_pip_environ(const char *const *envp, int break_system_packages);
#endif
