build-fuzz/obj/policy.o: core/policy.c core/policy.h core/store.h \
  core/token.h core/url.h /usr/include/lua5.4/lua.h \
  /usr/include/lua5.4/luaconf.h /usr/include/lua5.4/lauxlib.h \
  /usr/include/lua5.4/lualib.h core/err.h core/log.h core/metrics.h \
  core/policy_source.h core/policy_strlib.h core/policy_tablib.h

core/policy.h:

core/store.h:

core/token.h:

core/url.h:

/usr/include/lua5.4/lua.h:

/usr/include/lua5.4/luaconf.h:

/usr/include/lua5.4/lauxlib.h:

/usr/include/lua5.4/lualib.h:

core/err.h:

core/log.h:

core/metrics.h:

core/policy_source.h:

core/policy_strlib.h:

core/policy_tablib.h:
