/* cli.h - the operator commands: tenant, key, contractor (on the store)
 * and policy (check files, reload a running server). Each returns the process exit status (0 ok, 1 failure,
 * 2 usage) and prints one-line errors on stderr. */
#ifndef HF_CLI_H
#define HF_CLI_H

int cli_tenant(const char *db_path, int argc, char **argv);
int cli_key(const char *db_path, int argc, char **argv);
int cli_contractor(const char *db_path, int argc, char **argv);
/* policy check | policy reload (cli_policy.c). */
int cli_policy(int argc, char **argv);

#endif
