build-fuzz/obj/policy_strlib.o: core/policy_strlib.c core/policy_strlib.h \
  /usr/include/lua5.4/lua.h /usr/include/lua5.4/luaconf.h \
  /usr/include/lua5.4/lauxlib.h core/pattern.h

core/policy_strlib.h:

/usr/include/lua5.4/lua.h:

/usr/include/lua5.4/luaconf.h:

/usr/include/lua5.4/lauxlib.h:

core/pattern.h:
