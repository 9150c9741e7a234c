# node-gyp build description for the fastivc addon.
# Build: npx node-gyp rebuild --directory native --nodedir=/usr   (or: npm run build:native)
{
  "targets": [
    {
      "target_name": "fastivc",
      "sources": ["src/addon.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_CPP_EXCEPTIONS", "NAPI_VERSION=8"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-fexceptions", "-std=c++17", "-Wall", "-Wextra"],
      "conditions": [
        ["OS=='mac'", {
          "xcode_settings": {"GCC_ENABLE_CPP_EXCEPTIONS": "YES"}
        }]
      ]
    }
  ]
}
