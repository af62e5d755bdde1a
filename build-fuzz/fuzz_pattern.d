build-fuzz/fuzz_pattern: tests/fuzz/fuzz_pattern.c \
  /usr/include/lua5.4/lauxlib.h /usr/include/lua5.4/luaconf.h \
  /usr/include/lua5.4/lua.h /usr/include/lua5.4/lualib.h core/pattern.h

/usr/include/lua5.4/lauxlib.h:

/usr/include/lua5.4/luaconf.h:

/usr/include/lua5.4/lua.h:

/usr/include/lua5.4/lualib.h:

core/pattern.h:
