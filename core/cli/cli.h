/* cli.h - the operator commands: tenant, key, contractor (on the store)
 * events (webhook outbox) and policy (check files, reload a running server). Each returns the process exit status (0 ok, 1 failure,
 * 2 usage) and prints one-line errors on stderr. */
#ifndef HF_CLI_H
#define HF_CLI_H

int cli_tenant(const char *db_path, int argc, char **argv);
int cli_key(const char *db_path, int argc, char **argv);
int cli_contractor(const char *db_path, int argc, char **argv);
/* policy check|reload|publish|history|rollback (cli_policy.c). */
int cli_policy(const char *db_path, int argc, char **argv);
/* events list | events retry (cli_events.c). */
int cli_events(const char *db_path, int argc, char **argv);

/* tenant list, key list, contractor list on an open store (cli_list.c);
 * usage is the command's help, printed on a usage error. */
struct store;
int cli_tenant_list(struct store *s, int argc, char **argv, const char *usage);
int cli_key_list(struct store *s, int argc, char **argv, const char *usage);
int cli_contractor_list(struct store *s, int argc, char **argv, const char *usage);

/* Shared by the commands: print text (stdout for status 0, else stderr)
 * and return status; "--help" or "-h"; open the store or print why not;
 * one JSON line. */
struct store;
struct json_t;
int cli_usage(const char *text, int status);
/* Print o as one JSON line on stdout and free it. */
void cli_print_json(struct json_t *o);
int cli_is_help(const char *arg);
struct store *cli_open_store(const char *db_path);

#endif
