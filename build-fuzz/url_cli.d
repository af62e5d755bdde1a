build-fuzz/url_cli: tests/fuzz/url_cli.c core/url.h

core/url.h:
