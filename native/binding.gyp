# node-gyp build description for the fastivc addon.
# Build: npm run build:native   (node-gyp rebuild --directory native --nodedir=/usr)
#
# The DEM's structure layouts come from ONE header, evtmgr.h of the patched Xen tree (./build.sh xen puts it in
# build/xen/src/xen/include/public). Set FASTIVC_XEN_PUBLIC to use another public-header folder; a relative path is
# taken from the repository root. That folder goes on the quoted-include path only (-iquote), not include_dirs:
# it holds a features.h and an errno.h that would shadow libc's.
{
  "variables": {
    "xen_public%": "<!(node -p \"require('path').resolve('..', process.env.FASTIVC_XEN_PUBLIC || 'build/xen/src/xen/include/public')\")"
  },
  "targets": [
    {
      "target_name": "fastivc",
      "sources": ["src/addon.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_CPP_EXCEPTIONS", "NAPI_VERSION=8"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-fexceptions", "-std=c++17", "-Wall", "-Wextra", "-Wfatal-errors", "-iquote", "<(xen_public)"],
      "conditions": [
        ["OS=='mac'", {
          "xcode_settings": {"GCC_ENABLE_CPP_EXCEPTIONS": "YES"}
        }]
      ]
    }
  ]
}
