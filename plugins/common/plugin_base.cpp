#include "plugin_base.h"

#include <atomic>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <exception>
#include <utility>

namespace vitrt
{
namespace plugin
{

using namespace nvinfer1;

namespace
{
std::atomic<ILoggerFinder*> gLoggerFinder{nullptr};

const char* severity_name(ILogger::Severity severity)
{
    switch (severity)
    {
    case ILogger::Severity::kINTERNAL_ERROR: return "internal error";
    case ILogger::Severity::kERROR: return "error";
    case ILogger::Severity::kWARNING: return "warning";
    case ILogger::Severity::kINFO: return "info";
    default: return "verbose";
    }
}
} // namespace

void set_logger_finder(ILoggerFinder* finder)
{
    gLoggerFinder.store(finder);
}

void log(ILogger::Severity severity, const char* format, ...)
{
    char message[1024];
    va_list args;
    va_start(args, format);
    std::vsnprintf(message, sizeof(message), format, args);
    va_end(args);
    ILoggerFinder* finder = gLoggerFinder.load();
    ILogger* logger = finder != nullptr ? finder->findLogger() : nullptr;
    if (logger != nullptr)
    {
        logger->log(severity, message);
    }
    else if (severity <= ILogger::Severity::kERROR)
    {
        std::fprintf(stderr, "[vitrt plugins] %s: %s\n", severity_name(severity), message);
    }
}

int32_t to_vitrt_dtype(DataType type)
{
    switch (type)
    {
    case DataType::kFLOAT: return VITRT_DTYPE_FLOAT32;
    case DataType::kHALF: return VITRT_DTYPE_FLOAT16;
    case DataType::kBF16: return VITRT_DTYPE_BFLOAT16;
    default: return -1;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Attributes
// ---------------------------------------------------------------------------------------------------------------
Attributes::Attributes(spec::OpSpec const& spec)
    : spec_(&spec)
    , values_(static_cast<size_t>(spec.num_fields), 0.0)
{
}

Attributes::Attributes(Attributes const& other)
    : spec_(other.spec_)
    , values_(other.values_)
{
}

Attributes& Attributes::operator=(Attributes const& other)
{
    spec_ = other.spec_;
    values_ = other.values_;
    fields_.clear(); // serialised views point into the old storage
    return *this;
}

namespace
{
bool read_number(PluginField const& field, double* value)
{
    switch (field.type)
    {
    case PluginFieldType::kINT32: *value = *static_cast<const int32_t*>(field.data); return true;
    case PluginFieldType::kINT64: *value = static_cast<double>(*static_cast<const int64_t*>(field.data)); return true;
    case PluginFieldType::kINT16: *value = *static_cast<const int16_t*>(field.data); return true;
    case PluginFieldType::kINT8: *value = *static_cast<const int8_t*>(field.data); return true;
    case PluginFieldType::kFLOAT32: *value = *static_cast<const float*>(field.data); return true;
    case PluginFieldType::kFLOAT64: *value = *static_cast<const double*>(field.data); return true;
    default: return false;
    }
}

bool is_integer_type(PluginFieldType type)
{
    return type == PluginFieldType::kINT32 || type == PluginFieldType::kINT64 || type == PluginFieldType::kINT16
        || type == PluginFieldType::kINT8;
}
} // namespace

bool Attributes::parse(PluginFieldCollection const* fields, const char* instance)
{
    spec::OpSpec const& op = *spec_;
    const char* who = instance != nullptr && instance[0] != '\0' ? instance : op.name;
    std::vector<bool> seen(values_.size(), false);
    int32_t const count = fields != nullptr ? fields->nbFields : 0;
    for (int32_t i = 0; i < count; ++i)
    {
        PluginField const& field = fields->fields[i];
        if (field.name == nullptr)
        {
            log(ILogger::Severity::kERROR, "%s (%s): plugin field %d has no name", who, op.name, i);
            return false;
        }
        int32_t index = -1;
        for (int32_t f = 0; f < op.num_fields; ++f)
        {
            if (std::strcmp(op.fields[f].name, field.name) == 0)
            {
                index = f;
            }
        }
        if (index < 0)
        {
            log(ILogger::Severity::kERROR, "%s (%s): unknown attribute '%s'", who, op.name, field.name);
            return false;
        }
        spec::FieldSpec const& fs = op.fields[index];
        if (seen[static_cast<size_t>(index)])
        {
            log(ILogger::Severity::kERROR, "%s (%s): attribute '%s' given twice", who, op.name, fs.name);
            return false;
        }
        double value = 0.0;
        bool const type_ok = fs.type == spec::FieldType::kInt ? is_integer_type(field.type)
                                                              : !is_integer_type(field.type);
        if (field.length != 1 || field.data == nullptr || !type_ok || !read_number(field, &value))
        {
            log(ILogger::Severity::kERROR, "%s (%s): attribute '%s' must be one %s value", who, op.name, fs.name,
                fs.type == spec::FieldType::kInt ? "INT32" : "FLOAT32");
            return false;
        }
        if (!std::isfinite(value) || (fs.has_min && value < fs.min) || (fs.has_max && value > fs.max))
        {
            log(ILogger::Severity::kERROR, "%s (%s): attribute %s=%g is outside [%g, %g]", who, op.name, fs.name, value,
                fs.has_min ? fs.min : -INFINITY, fs.has_max ? fs.max : INFINITY);
            return false;
        }
        if (fs.num_options > 0)
        {
            bool allowed = false;
            for (int32_t o = 0; o < fs.num_options; ++o)
            {
                allowed = allowed || value == fs.options[o];
            }
            if (!allowed)
            {
                log(ILogger::Severity::kERROR, "%s (%s): attribute %s=%g is not an allowed option", who, op.name,
                    fs.name, value);
                return false;
            }
        }
        values_[static_cast<size_t>(index)] = value;
        seen[static_cast<size_t>(index)] = true;
    }
    for (int32_t f = 0; f < op.num_fields; ++f)
    {
        if (!seen[static_cast<size_t>(f)])
        {
            if (op.fields[f].required)
            {
                log(ILogger::Severity::kERROR, "%s (%s): required attribute '%s' is missing", who, op.name,
                    op.fields[f].name);
                return false;
            }
            values_[static_cast<size_t>(f)] = op.fields[f].default_value;
        }
    }
    return true;
}

int32_t Attributes::integer(int32_t field) const
{
    return static_cast<int32_t>(values_[static_cast<size_t>(field)]);
}

float Attributes::real(int32_t field) const
{
    return static_cast<float>(values_[static_cast<size_t>(field)]);
}

PluginFieldCollection const* Attributes::serialize()
{
    spec::OpSpec const& op = *spec_;
    ints_.assign(values_.size(), 0);
    floats_.assign(values_.size(), 0.0f);
    fields_.clear();
    for (int32_t f = 0; f < op.num_fields; ++f)
    {
        size_t const i = static_cast<size_t>(f);
        if (op.fields[f].type == spec::FieldType::kInt)
        {
            ints_[i] = static_cast<int32_t>(values_[i]);
            fields_.emplace_back(op.fields[f].name, &ints_[i], PluginFieldType::kINT32, 1);
        }
        else
        {
            floats_[i] = static_cast<float>(values_[i]);
            fields_.emplace_back(op.fields[f].name, &floats_[i], PluginFieldType::kFLOAT32, 1);
        }
    }
    collection_.nbFields = static_cast<int32_t>(fields_.size());
    collection_.fields = fields_.data();
    return &collection_;
}

std::string Attributes::describe() const
{
    std::string text;
    char buffer[64];
    for (int32_t f = 0; f < spec_->num_fields; ++f)
    {
        if (spec_->fields[f].type == spec::FieldType::kInt)
        {
            std::snprintf(buffer, sizeof(buffer), "%d", integer(f));
        }
        else
        {
            std::snprintf(buffer, sizeof(buffer), "%.9g", static_cast<double>(real(f)));
        }
        text += (f == 0 ? "" : ",");
        text += spec_->fields[f].name;
        text += "=";
        text += buffer;
    }
    return text;
}

bool dim_matches(int64_t actual, int64_t expected)
{
    return actual < 0 || expected < 0 || actual == expected;
}

bool has_rank(Dims const& dims, int32_t rank, const char* op, const char* input)
{
    if (dims.nbDims != rank)
    {
        log(ILogger::Severity::kERROR, "%s: input '%s' must have rank %d, got %d", op, input, rank, dims.nbDims);
        return false;
    }
    return true;
}

bool has_dims(Dims const& dims, std::vector<int64_t> const& expected, const char* op, const char* input)
{
    if (!has_rank(dims, static_cast<int32_t>(expected.size()), op, input))
    {
        return false;
    }
    for (int32_t i = 0; i < dims.nbDims; ++i)
    {
        if (!dim_matches(dims.d[i], expected[static_cast<size_t>(i)]))
        {
            std::string want;
            std::string got;
            for (int32_t j = 0; j < dims.nbDims; ++j)
            {
                int64_t const e = expected[static_cast<size_t>(j)];
                want += (j ? "," : "") + (e < 0 ? std::string("?") : std::to_string(e));
                got += (j ? "," : "") + std::to_string(static_cast<int64_t>(dims.d[j]));
            }
            log(ILogger::Severity::kERROR, "%s: input '%s' has dims (%s), expected (%s)", op, input, got.c_str(),
                want.c_str());
            return false;
        }
    }
    return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Plugin
// ---------------------------------------------------------------------------------------------------------------
Plugin::Plugin(Attributes attributes)
    : attributes_(std::move(attributes))
{
}

IPluginCapability* Plugin::getCapabilityInterface(PluginCapabilityType type) noexcept
{
    switch (type)
    {
    case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
    case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
    case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
    default: return nullptr;
    }
}

AsciiChar const* Plugin::getPluginName() const noexcept
{
    return attributes_.spec().name;
}

AsciiChar const* Plugin::getPluginVersion() const noexcept
{
    return attributes_.spec().version;
}

AsciiChar const* Plugin::getPluginNamespace() const noexcept
{
    return attributes_.spec().plugin_namespace;
}

int32_t Plugin::getNbOutputs() const noexcept
{
    return 1;
}

int32_t Plugin::configurePlugin(
    DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    if (nbInputs != attributes_.spec().num_inputs || nbOutputs != 1)
    {
        log(ILogger::Severity::kERROR, "%s: expects %d inputs and 1 output, got %d and %d", getPluginName(),
            attributes_.spec().num_inputs, nbInputs, nbOutputs);
        return -1;
    }
    (void)out;
    std::vector<Dims> dims(static_cast<size_t>(nbInputs));
    for (int32_t i = 0; i < nbInputs; ++i)
    {
        dims[static_cast<size_t>(i)] = in[i].desc.dims;
    }
    return check_shapes(dims.data(), nbInputs) ? 0 : -1;
}

int32_t Plugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    if (nbOutputs != 1 || nbInputs < 1)
    {
        return -1;
    }
    outputTypes[0] = inputTypes[0];
    return 0;
}

int32_t Plugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /* shapeInputs */,
    int32_t /* nbShapeInputs */, DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& /* exprBuilder */) noexcept
{
    if (nbInputs != attributes_.spec().num_inputs || nbOutputs != 1 || inputs[0].nbDims != 3)
    {
        log(ILogger::Severity::kERROR, "%s: expects %d inputs with a rank-3 q and 1 output", getPluginName(),
            attributes_.spec().num_inputs);
        return -1;
    }
    outputs[0] = inputs[0]; // (B, N, C) like q, batch stays symbolic
    return 0;
}

bool Plugin::supportsFormatCombination(
    int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (pos < 0 || pos >= nbInputs + nbOutputs)
    {
        return false;
    }
    PluginTensorDesc const& desc = inOut[pos].desc;
    if (desc.format != TensorFormat::kLINEAR || to_vitrt_dtype(desc.type) < 0)
    {
        return false;
    }
    return pos == 0 || desc.type == inOut[0].desc.type; // one dtype for every input and the output
}

size_t Plugin::getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
    DynamicPluginTensorDesc const* /* outputs */, int32_t /* nbOutputs */) const noexcept
{
    std::vector<Dims> dims(static_cast<size_t>(nbInputs));
    for (int32_t i = 0; i < nbInputs; ++i)
    {
        dims[static_cast<size_t>(i)] = inputs[i].max; // enough for every shape of the profile
    }
    size_t bytes = 0;
    int32_t const status = workspace_bound(dims.data(), to_vitrt_dtype(inputs[0].desc.type), &bytes);
    if (status != VITRT_STATUS_SUCCESS)
    {
        report(status, "workspace size");
        return 0;
    }
    return bytes;
}

int32_t Plugin::workspace_bound(Dims const* inputs, int32_t dtype, size_t* bytes) const
{
    return workspace_for(inputs, dtype, bytes);
}

std::string Plugin::timing_key() const
{
    return attributes_.describe();
}

char const* Plugin::getTimingCacheID() noexcept
{
    // Shapes and formats are prefixed by TensorRT; the kernel library version invalidates stale timings.
    timing_cache_id_ = std::string(getPluginName()) + "/" + timing_key() + "/kernels=" + std::to_string(vitrt_kernels_version());
    return timing_cache_id_.c_str();
}

char const* Plugin::getMetadataString() noexcept
{
    metadata_ = attributes_.describe();
    return metadata_.c_str();
}

int32_t Plugin::prepare(Dims const* /* inputs */, int32_t /* dtype */)
{
    return VITRT_STATUS_SUCCESS;
}

int32_t Plugin::onShapeChange(
    PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* /* out */, int32_t nbOutputs) noexcept
{
    if (nbInputs != attributes_.spec().num_inputs || nbOutputs != 1)
    {
        return -1;
    }
    std::vector<Dims> dims(static_cast<size_t>(nbInputs));
    for (int32_t i = 0; i < nbInputs; ++i)
    {
        dims[static_cast<size_t>(i)] = in[i].dims;
    }
    if (!check_shapes(dims.data(), nbInputs))
    {
        return -1;
    }
    int32_t const status = prepare(dims.data(), to_vitrt_dtype(in[0].type));
    return status == VITRT_STATUS_SUCCESS ? 0 : report(status, "shape change");
}

int32_t Plugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* outputDesc,
    void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept
{
    int32_t const dtype = to_vitrt_dtype(inputDesc[0].type);
    if (dtype < 0 || outputDesc[0].type != inputDesc[0].type)
    {
        log(ILogger::Severity::kERROR, "%s: unsupported I/O types", getPluginName());
        return -1;
    }
    // TensorRT provides at least getWorkspaceSize() of the profile's largest shape, which covers this shape; the
    // launcher re-derives the layout from the actual shape.
    size_t available = 0;
    std::vector<Dims> dims(static_cast<size_t>(attributes_.spec().num_inputs));
    for (size_t i = 0; i < dims.size(); ++i)
    {
        dims[i] = inputDesc[i].dims;
    }
    int32_t status = workspace_for(dims.data(), dtype, &available);
    if (status == VITRT_STATUS_SUCCESS)
    {
        status = launch(inputDesc, inputs, outputs[0], dtype, workspace, available, stream);
    }
    return status == VITRT_STATUS_SUCCESS ? 0 : report(status, "enqueue");
}

IPluginV3* Plugin::attachToContext(IPluginResourceContext* /* context */) noexcept
{
    return clone(); // no per-context resources: cuFFT plans are shared through the kernel library's cache
}

PluginFieldCollection const* Plugin::getFieldsToSerialize() noexcept
{
    return attributes_.serialize();
}

int32_t Plugin::report(int32_t status, const char* what) const
{
    const char* detail = vitrt_last_error();
    log(ILogger::Severity::kERROR, "%s %s failed: %s (%s)", getPluginName(), what, detail[0] != '\0' ? detail : "",
        vitrt_status_string(status));
    return -1;
}

// ---------------------------------------------------------------------------------------------------------------
// Creator
// ---------------------------------------------------------------------------------------------------------------
Creator::Creator(spec::OpSpec const& spec)
    : spec_(spec)
{
    for (int32_t f = 0; f < spec.num_fields; ++f)
    {
        PluginFieldType const type
            = spec.fields[f].type == spec::FieldType::kInt ? PluginFieldType::kINT32 : PluginFieldType::kFLOAT32;
        fields_.emplace_back(spec.fields[f].name, nullptr, type, 1);
    }
    collection_.nbFields = static_cast<int32_t>(fields_.size());
    collection_.fields = fields_.data();
}

IPluginV3* Creator::createPlugin(AsciiChar const* name, PluginFieldCollection const* fc, TensorRTPhase /* phase */) noexcept
{
    try
    {
        Attributes attributes(spec_);
        if (!attributes.parse(fc, name))
        {
            return nullptr;
        }
        return make(attributes);
    }
    catch (std::exception const& error)
    {
        log(ILogger::Severity::kERROR, "%s: cannot create the plugin: %s", spec_.name, error.what());
        return nullptr;
    }
}

PluginFieldCollection const* Creator::getFieldNames() noexcept
{
    return &collection_;
}

AsciiChar const* Creator::getPluginName() const noexcept
{
    return spec_.name;
}

AsciiChar const* Creator::getPluginVersion() const noexcept
{
    return spec_.version;
}

AsciiChar const* Creator::getPluginNamespace() const noexcept
{
    return spec_.plugin_namespace;
}

} // namespace plugin
} // namespace vitrt
