build-fuzz/obj/policy_tablib.o: core/policy_tablib.c core/policy_tablib.h \
  /usr/include/lua5.4/lua.h /usr/include/lua5.4/luaconf.h \
  /usr/include/lua5.4/lauxlib.h

core/policy_tablib.h:

/usr/include/lua5.4/lua.h:

/usr/include/lua5.4/luaconf.h:

/usr/include/lua5.4/lauxlib.h:
