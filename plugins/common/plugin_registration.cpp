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
//    libraries serialized into version-compatible engines, which the lean/dispatch runtime loads into its own
//    registry) calls setLoggerFinder() and getCreators(). getCreators() always hands over every creator, so each
//    registry that asks gets all of them. loadLibrary fails on a creator its registry already holds, so the
//    creators this copy registered statically are first taken back out of that registry (the caller registers
//    them again); duplicates that another copy of the library put there are left alone.
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
    IPluginRegistry* registered_in; // the registry this copy registered the creator in statically, if any
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
    IPluginRegistry* registered_in = nullptr;
    if (registry != nullptr)
    {
        // false when TensorRT already holds a creator of this name/version/namespace (e.g. from a second copy of
        // this library, as a version-compatible engine loads one): TensorRT can create the plugin either way.
        if (registry->registerCreator(creator, plugin_namespace(creator)))
        {
            registered_in = registry;
        }
        else
        {
            log(ILogger::Severity::kVERBOSE, "%s: a creator of this name is already registered",
                static_cast<nvinfer1::IPluginCreatorV3One&>(creator).getPluginName());
        }
    }
    std::lock_guard<std::mutex> lock(registrations_mutex());
    registrations().push_back({&creator, registered_in});
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
    static std::vector<nvinfer1::IPluginCreatorInterface*> all;
    std::lock_guard<std::mutex> lock(vitrt::plugin::registrations_mutex());
    all.clear();
    for (auto& registration : vitrt::plugin::registrations())
    {
        if (registration.registered_in != nullptr)
        {
            registration.registered_in->deregisterCreator(*registration.creator);
            registration.registered_in = nullptr;
        }
        all.push_back(registration.creator);
    }
    nbCreators = static_cast<int32_t>(all.size());
    return all.data();
}

} // extern "C"
