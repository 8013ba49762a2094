PLUGIN_LIBS_native := -ldl
