// Drives libvitrt_plugins' creators and plugins the way TensorRT does, without TensorRT: the plugin sources are
// compiled against real TensorRT headers and linked with the host-emulated kernels, so enqueue() runs on the CPU.
//
//   plugin_harness describe              -> JSON: creators from getCreators(), their fields, attribute checks
//   plugin_harness run <job file>        -> runs one plugin end to end and writes its output tensor
//
// Job file lines: "op <name>", "attr <name> i|f <value>", "dtype <0|1|2>", "tactic <id>",
// "input <rank> <d0> ... <path>" (raw little-endian data), "output <path>".
#include <NvInferRuntime.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

extern "C" nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);

using namespace nvinfer1;

namespace
{

IPluginCreatorV3One* find_creator(std::string const& name)
{
    int32_t count = 0;
    auto* const* creators = getCreators(count);
    for (int32_t i = 0; i < count; ++i)
    {
        auto* creator = static_cast<IPluginCreatorV3One*>(creators[i]);
        if (name == creator->getPluginName())
        {
            return creator;
        }
    }
    return nullptr;
}

struct Fields
{
    std::vector<std::string> names;
    std::vector<int32_t> ints;
    std::vector<float> floats;
    std::vector<char> kinds;
    std::vector<PluginField> fields;
    PluginFieldCollection collection{};

    void add(std::string const& name, char kind, double value)
    {
        names.push_back(name);
        kinds.push_back(kind);
        ints.push_back(static_cast<int32_t>(value));
        floats.push_back(static_cast<float>(value));
    }
    PluginFieldCollection const* build()
    {
        fields.clear();
        for (size_t i = 0; i < names.size(); ++i)
        {
            if (kinds[i] == 'i')
            {
                fields.emplace_back(names[i].c_str(), &ints[i], PluginFieldType::kINT32, 1);
            }
            else
            {
                fields.emplace_back(names[i].c_str(), &floats[i], PluginFieldType::kFLOAT32, 1);
            }
        }
        collection.nbFields = static_cast<int32_t>(fields.size());
        collection.fields = fields.data();
        return &collection;
    }
};

std::unique_ptr<IPluginV3> create(IPluginCreatorV3One* creator, Fields& fields, TensorRTPhase phase)
{
    return std::unique_ptr<IPluginV3>(creator->createPlugin("harness", fields.build(), phase));
}

int describe()
{
    int32_t count = 0;
    auto* const* creators = getCreators(count);
    std::cout << "{\"creators\": [";
    for (int32_t i = 0; i < count; ++i)
    {
        auto* creator = static_cast<IPluginCreatorV3One*>(creators[i]);
        std::cout << (i ? ", " : "") << "{\"name\": \"" << creator->getPluginName() << "\", \"version\": \""
                  << creator->getPluginVersion() << "\", \"namespace\": \"" << creator->getPluginNamespace()
                  << "\", \"interface\": \"" << creator->getInterfaceInfo().kind << "\", \"fields\": {";
        PluginFieldCollection const* fc = creator->getFieldNames();
        for (int32_t f = 0; f < fc->nbFields; ++f)
        {
            std::cout << (f ? ", " : "") << "\"" << fc->fields[f].name << "\": \""
                      << (fc->fields[f].type == PluginFieldType::kINT32 ? "INT32" : "FLOAT32") << "\"";
        }
        std::cout << "}}";
    }
    std::cout << "]";
    // Every registry that asks (the global one, a version-compatible plan's lean runtime) gets every creator.
    int32_t again = 0;
    getCreators(again);
    std::cout << ", \"creators_on_second_call\": " << again;

    // Attribute validation, serialization round trip and build-time queries on VitrtCirculantAttention.
    IPluginCreatorV3One* circulant = find_creator("VitrtCirculantAttention");
    auto attempt = [&](std::vector<std::tuple<std::string, char, double>> const& given) {
        Fields fields;
        for (auto const& [name, kind, value] : given)
        {
            fields.add(name, kind, value);
        }
        return create(circulant, fields, TensorRTPhase::kBUILD) != nullptr;
    };
    std::cout << ", \"accepts_valid\": " << attempt({{"height", 'i', 14}, {"width", 'i', 14}});
    std::cout << ", \"rejects_missing\": " << !attempt({{"height", 'i', 14}});
    std::cout << ", \"rejects_out_of_range\": " << !attempt({{"height", 'i', 0}, {"width", 'i', 14}});
    std::cout << ", \"rejects_bad_option\": " << !attempt({{"height", 'i', 4}, {"width", 'i', 4}, {"strategy", 'i', 3}});
    std::cout << ", \"rejects_wrong_type\": " << !attempt({{"height", 'f', 14}, {"width", 'i', 14}});
    std::cout << ", \"rejects_unknown\": " << !attempt({{"height", 'i', 4}, {"width", 'i', 4}, {"eps", 'f', 1}});

    Fields fields;
    fields.add("height", 'i', 14);
    fields.add("width", 'i', 7);
    auto plugin = create(circulant, fields, TensorRTPhase::kBUILD);
    auto* build = static_cast<IPluginV3OneBuild*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD));
    auto* runtime = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    auto* core = static_cast<IPluginV3OneCore*>(plugin->getCapabilityInterface(PluginCapabilityType::kCORE));
    PluginFieldCollection const* serialized = runtime->getFieldsToSerialize();
    std::unique_ptr<IPluginV3> restored(circulant->createPlugin("restored", serialized, TensorRTPhase::kRUNTIME));
    auto* restored_build
        = static_cast<IPluginV3OneBuild*>(restored->getCapabilityInterface(PluginCapabilityType::kBUILD));
    std::cout << ", \"core_name\": \"" << core->getPluginName() << "\"";
    std::cout << ", \"metadata\": \"" << build->getMetadataString() << "\"";
    std::cout << ", \"restored_metadata\": \"" << restored_build->getMetadataString() << "\"";
    std::cout << ", \"timing_cache_id\": \"" << build->getTimingCacheID() << "\"";

    DynamicPluginTensorDesc io[4]{};
    auto format = [&](int pos, DataType type) {
        io[pos].desc.type = type;
        io[pos].desc.format = TensorFormat::kLINEAR;
    };
    for (int i = 0; i < 4; ++i)
    {
        format(i, DataType::kHALF);
    }
    bool const half_ok = build->supportsFormatCombination(3, io, 3, 1);
    format(3, DataType::kFLOAT);
    bool const mixed_ok = build->supportsFormatCombination(3, io, 3, 1);
    format(0, DataType::kINT8);
    bool const int8_ok = build->supportsFormatCombination(0, io, 3, 1);
    format(0, DataType::kBF16);
    bool const bf16_ok = build->supportsFormatCombination(0, io, 3, 1);
    io[0].desc.format = TensorFormat::kHWC;
    bool const hwc_ok = build->supportsFormatCombination(0, io, 3, 1);
    std::cout << ", \"formats\": {\"half\": " << half_ok << ", \"mixed\": " << mixed_ok << ", \"int8\": " << int8_ok
              << ", \"bf16\": " << bf16_ok << ", \"hwc\": " << hwc_ok << "}";

    // Dynamic batch: the output dims are q's expressions (opaque pointers here).
    DimsExprs inputs[3];
    for (auto& in : inputs)
    {
        in.nbDims = 3;
        for (int d = 0; d < 3; ++d)
        {
            in.d[d] = reinterpret_cast<IDimensionExpr const*>(static_cast<uintptr_t>(0x1000 + d));
        }
    }
    DimsExprs out{};
    // The plugins never build new expressions (the output is q's dims), so a never-used placeholder suffices.
    alignas(IExprBuilder) static unsigned char placeholder[64] = {};
    auto& unused_builder = *reinterpret_cast<IExprBuilder*>(placeholder);
    int32_t const shapes = build->getOutputShapes(inputs, 3, nullptr, 0, &out, 1, unused_builder);
    std::cout << ", \"output_shapes_status\": " << shapes << ", \"output_is_q\": "
              << (out.nbDims == 3 && out.d[0] == inputs[0].d[0] && out.d[2] == inputs[0].d[2]);

    // configurePlugin rejects a token count that is not height * width.
    for (int i = 0; i < 4; ++i)
    {
        io[i].desc.dims.nbDims = 3;
        io[i].desc.dims.d[0] = -1;
        io[i].desc.dims.d[1] = 97;
        io[i].desc.dims.d[2] = 64;
        io[i].min = io[i].max = io[i].desc.dims;
        io[i].max.d[0] = 8;
    }
    std::cout << ", \"rejects_bad_tokens\": " << (build->configurePlugin(io, 3, io + 3, 1) != 0);
    for (int i = 0; i < 4; ++i)
    {
        io[i].desc.dims.d[1] = io[i].max.d[1] = 98;
    }
    std::cout << ", \"configure_ok\": " << (build->configurePlugin(io, 3, io + 3, 1) == 0);
    std::cout << ", \"tactics\": " << build->getNbTactics();
    std::cout << "}" << std::endl;
    return 0;
}

std::vector<char> read_file(std::string const& path)
{
    std::ifstream in(path, std::ios::binary);
    return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

int run(char const* job_path)
{
    std::ifstream job(job_path);
    std::string line;
    std::string op;
    std::string output_path;
    Fields fields;
    int dtype = 0;
    int tactic = 0;
    std::vector<Dims> dims;
    std::vector<std::vector<char>> data;
    while (std::getline(job, line))
    {
        std::istringstream words(line);
        std::string kind;
        words >> kind;
        if (kind == "op")
        {
            words >> op;
        }
        else if (kind == "attr")
        {
            std::string name;
            char type = 'i';
            double value = 0;
            words >> name >> type >> value;
            fields.add(name, type, value);
        }
        else if (kind == "dtype")
        {
            words >> dtype;
        }
        else if (kind == "tactic")
        {
            words >> tactic;
        }
        else if (kind == "input")
        {
            Dims d{};
            words >> d.nbDims;
            for (int i = 0; i < d.nbDims; ++i)
            {
                words >> d.d[i];
            }
            std::string path;
            words >> path;
            dims.push_back(d);
            data.push_back(read_file(path));
        }
        else if (kind == "output")
        {
            words >> output_path;
        }
    }
    IPluginCreatorV3One* creator = find_creator(op);
    if (creator == nullptr)
    {
        std::cerr << "no creator " << op << std::endl;
        return 2;
    }
    auto plugin = create(creator, fields, TensorRTPhase::kBUILD);
    if (!plugin)
    {
        std::cerr << "createPlugin failed" << std::endl;
        return 3;
    }
    // Deserialize like an engine would: a runtime-phase plugin from the serialized fields, cloned per context.
    auto* runtime_of_built
        = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    std::unique_ptr<IPluginV3> deserialized(
        creator->createPlugin("engine", runtime_of_built->getFieldsToSerialize(), TensorRTPhase::kRUNTIME));
    auto* attach = static_cast<IPluginV3OneRuntime*>(deserialized->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    std::unique_ptr<IPluginV3> context(attach->attachToContext(nullptr));
    auto* build = static_cast<IPluginV3OneBuild*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD));
    auto* runtime = static_cast<IPluginV3OneRuntime*>(context->getCapabilityInterface(PluginCapabilityType::kRUNTIME));

    DataType const types[] = {DataType::kFLOAT, DataType::kHALF, DataType::kBF16};
    size_t const n = dims.size();
    std::vector<DynamicPluginTensorDesc> dyn(n + 1);
    std::vector<PluginTensorDesc> desc(n + 1);
    for (size_t i = 0; i <= n; ++i)
    {
        Dims const& d = i < n ? dims[i] : dims[0];
        desc[i].dims = d;
        desc[i].type = types[dtype];
        desc[i].format = TensorFormat::kLINEAR;
        dyn[i].desc = desc[i];
        dyn[i].min = dyn[i].max = dyn[i].opt = d;
    }
    int32_t const nb = static_cast<int32_t>(n);
    if (build->configurePlugin(dyn.data(), nb, dyn.data() + n, 1) != 0)
    {
        std::cerr << "configurePlugin failed" << std::endl;
        return 4;
    }
    size_t const workspace_bytes = build->getWorkspaceSize(dyn.data(), nb, dyn.data() + n, 1);
    if (runtime->setTactic(tactic) != 0 || runtime->onShapeChange(desc.data(), nb, desc.data() + n, 1) != 0)
    {
        std::cerr << "setTactic/onShapeChange failed" << std::endl;
        return 5;
    }
    std::vector<char> workspace(workspace_bytes + 1);
    std::vector<void const*> inputs;
    for (auto& buffer : data)
    {
        inputs.push_back(buffer.data());
    }
    std::vector<char> output(data[0].size());
    void* outputs[] = {output.data()};
    if (runtime->enqueue(desc.data(), desc.data() + n, inputs.data(), outputs, workspace.data(), nullptr) != 0)
    {
        std::cerr << "enqueue failed" << std::endl;
        return 6;
    }
    std::ofstream(output_path, std::ios::binary).write(output.data(), static_cast<std::streamsize>(output.size()));
    std::cout << "{\"workspace_bytes\": " << workspace_bytes << "}" << std::endl;
    return 0;
}

} // namespace

int main(int argc, char** argv)
{
    if (argc >= 2 && std::strcmp(argv[1], "describe") == 0)
    {
        return describe();
    }
    if (argc >= 3 && std::strcmp(argv[1], "run") == 0)
    {
        return run(argv[2]);
    }
    std::cerr << "usage: plugin_harness describe | run <job file>" << std::endl;
    return 2;
}
