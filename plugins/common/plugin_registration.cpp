// TensorRT entry points of libvitrt_plugins.so.
//
// Two ways in, both supported:
//  * static registration: the VITRT_REGISTER_TENSORRT_PLUGIN registrars run when the library is dlopen'ed (trtexec
//    --staticPlugins, Polygraphy --plugins, Triton --backend-config=tensorrt,plugins=..., LD_PRELOAD) and register
//    every creator with TensorRT's global registry. The library does not link libnvinfer, so the registry is
//    looked up at run time: the already-loaded libnvinfer.so.<major> (also when it was loaded RTLD_LOCAL, as the
//    Python bindings do), any global getPluginRegistry, or, for LD_PRELOAD before TensorRT is loaded, libnvinfer
//    from the loader path. Set VITRT_TRT_STATIC_REGISTRATION=0 to skip it.
//  * dynamic registration: IPluginRegistry::loadLibrary (trtexec --dynamicPlugins, Python load_library, plugin
//    libraries serialized into version-compatible engines) calls setLoggerFinder() and getCreators(). loadLibrary
//    fails if any returned creator is already registered, so getCreators() returns only the creators the static
//    registration did not get into the registry (all of them when it was skipped or found no TensorRT).
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "plugin_base.h"

#define VITRT_STRINGIFY_(x) #x
#define VITRT_STRINGIFY(x) VITRT_STRINGIFY_(x)

namespace vitrt
{
namespace plugin
{
namespace
{

using nvinfer1::ILogger;
using nvinfer1::IPluginCreatorInterface;
using nvinfer1::IPluginRegistry;

struct Registration
{
    IPluginCreatorInterface* creator;
    bool in_registry; // registered by us statically, or TensorRT already had an identical creator
};

std::mutex& registrations_mutex()
{
    static std::mutex mutex;
    return mutex;
}

std::vector<Registration>& registrations()
{
    static std::vector<Registration> all;
    return all;
}

bool static_registration_enabled()
{
    const char* flag = std::getenv("VITRT_TRT_STATIC_REGISTRATION");
    return flag == nullptr || std::strcmp(flag, "0") != 0;
}

IPluginRegistry* find_registry()
{
    using GetRegistry = IPluginRegistry* (*) ();
    static char const kLibrary[] = "libnvinfer.so." VITRT_STRINGIFY(NV_TENSORRT_MAJOR);
    void* symbol = nullptr;
    if (void* loaded = dlopen(kLibrary, RTLD_NOW | RTLD_NOLOAD))
    {
        symbol = dlsym(loaded, "getPluginRegistry");
    }
    if (symbol == nullptr)
    {
        symbol = dlsym(RTLD_DEFAULT, "getPluginRegistry");
    }
    if (symbol == nullptr)
    {
        if (void* loaded = dlopen(kLibrary, RTLD_NOW | RTLD_GLOBAL))
        {
            symbol = dlsym(loaded, "getPluginRegistry");
        }
    }
    return symbol == nullptr ? nullptr : reinterpret_cast<GetRegistry>(symbol)();
}

IPluginRegistry* registry_once()
{
    static IPluginRegistry* registry = static_registration_enabled() ? find_registry() : nullptr;
    return registry;
}

const char* plugin_namespace(IPluginCreatorInterface& creator)
{
    return static_cast<nvinfer1::IPluginCreatorV3One&>(creator).getPluginNamespace();
}

} // namespace

void register_creator_statically(IPluginCreatorInterface& creator)
{
    IPluginRegistry* registry = registry_once();
    bool in_registry = false;
    if (registry != nullptr)
    {
        // false also when TensorRT already holds a creator of this name/version/namespace (e.g. a second copy of
        // this library); either way TensorRT can create the plugin, so loadLibrary must not register it again.
        bool const registered = registry->registerCreator(creator, plugin_namespace(creator));
        in_registry = true;
        if (!registered)
        {
            log(ILogger::Severity::kVERBOSE, "%s: a creator of this name is already registered",
                static_cast<nvinfer1::IPluginCreatorV3One&>(creator).getPluginName());
        }
    }
    std::lock_guard<std::mutex> lock(registrations_mutex());
    registrations().push_back({&creator, in_registry});
}

} // namespace plugin
} // namespace vitrt

extern "C" {

__attribute__((visibility("default"))) void setLoggerFinder(nvinfer1::ILoggerFinder* finder)
{
    vitrt::plugin::set_logger_finder(finder);
}

__attribute__((visibility("default"))) nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    static std::vector<nvinfer1::IPluginCreatorInterface*> pending;
    std::lock_guard<std::mutex> lock(vitrt::plugin::registrations_mutex());
    pending.clear();
    for (auto const& registration : vitrt::plugin::registrations())
    {
        if (!registration.in_registry)
        {
            pending.push_back(registration.creator);
        }
    }
    nbCreators = static_cast<int32_t>(pending.size());
    return pending.data();
}

} // extern "C"
