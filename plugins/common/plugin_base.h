/*
 * Shared TensorRT boilerplate of the vitrt plugins: attribute parsing/validation against the generated op specs,
 * the IPluginV3 object with its Core/Build/Runtime capabilities, the creator, and logging.
 *
 * Every vitrt op has one output shaped like its first input, linear FP32/FP16/BF16 I/O of a single type, and an
 * optional workspace; an op plugin only supplies its shape rules, workspace query and launcher call.
 */
#pragma once

#include <NvInferRuntime.h>
#include <NvInferVersion.h>

#include <cstdint>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "vitrt_kernels.h"
#include "vitrt_op_specs.h"

namespace vitrt
{
namespace plugin
{

// Messages go to the logger TensorRT hands over through setLoggerFinder(); errors also reach stderr without one.
void log(nvinfer1::ILogger::Severity severity, const char* format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void set_logger_finder(nvinfer1::ILoggerFinder* finder);

// vitrt_dtype of a TensorRT type, -1 if unsupported.
int32_t to_vitrt_dtype(nvinfer1::DataType type);

// Attribute values of one plugin, indexed by the op's generated `Field` enum.
class Attributes
{
public:
    explicit Attributes(spec::OpSpec const& spec);
    Attributes(Attributes const& other);
    Attributes& operator=(Attributes const& other);

    // Reads a creator's field collection: rejects unknown/duplicate names, wrong types or lengths, values outside
    // the contract's bounds or options and missing required fields; fills defaults. Logs why and returns false.
    bool parse(nvinfer1::PluginFieldCollection const* fields, const char* instance);

    int32_t integer(int32_t field) const;
    float real(int32_t field) const;

    // INT fields as kINT32, FLOAT fields as kFLOAT32: what createPlugin() reads back at deserialization.
    nvinfer1::PluginFieldCollection const* serialize();
    // "height=14,width=14,strategy=0"
    std::string describe() const;
    spec::OpSpec const& spec() const
    {
        return *spec_;
    }

private:
    spec::OpSpec const* spec_;
    std::vector<double> values_;
    std::vector<int32_t> ints_;
    std::vector<float> floats_;
    std::vector<nvinfer1::PluginField> fields_;
    nvinfer1::PluginFieldCollection collection_{};
};

// Helpers for shape rules; -1 (unknown at build time) matches anything.
bool dim_matches(int64_t actual, int64_t expected);
bool has_rank(nvinfer1::Dims const& dims, int32_t rank, const char* op, const char* input);
// Checks `input` against the expected (B, ...) dims (-1: any); logs the mismatch.
bool has_dims(nvinfer1::Dims const& dims, std::vector<int64_t> const& expected, const char* op, const char* input);

class Plugin : public nvinfer1::IPluginV3,
               public nvinfer1::IPluginV3OneCore,
               public nvinfer1::IPluginV3OneBuild,
               public nvinfer1::IPluginV3OneRuntime
{
public:
    explicit Plugin(Attributes attributes);
    ~Plugin() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;

    // IPluginV3OneCore
    nvinfer1::AsciiChar const* getPluginName() const noexcept override;
    nvinfer1::AsciiChar const* getPluginVersion() const noexcept override;
    nvinfer1::AsciiChar const* getPluginNamespace() const noexcept override;

    // IPluginV3OneBuild
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
        nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    int32_t getNbOutputs() const noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;
    char const* getTimingCacheID() noexcept override;
    char const* getMetadataString() noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
        int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

protected:
    // Shape rules of the op's inputs; dims may hold -1 at build time. Logs and returns false when violated.
    virtual bool check_shapes(nvinfer1::Dims const* inputs, int32_t nbInputs) const = 0;
    // Workspace bytes for inputs of these (fully known) dims.
    virtual int32_t workspace_for(nvinfer1::Dims const* inputs, int32_t dtype, size_t* bytes) const = 0;
    // Workspace TensorRT reserves at build time, before a tactic is chosen: enough for every tactic.
    virtual int32_t workspace_bound(nvinfer1::Dims const* inputs, int32_t dtype, size_t* bytes) const;
    // Enqueues the kernels; returns a vitrt_status.
    virtual int32_t launch(nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs, void* output,
        int32_t dtype, void* workspace, size_t workspace_bytes, cudaStream_t stream) = 0;
    // Called with the runtime dims before the first enqueue of a shape (e.g. to create cuFFT plans there).
    virtual int32_t prepare(nvinfer1::Dims const* inputs, int32_t dtype);
    // Attribute string folded into the timing-cache id (the strategy-independent part by default).
    virtual std::string timing_key() const;

    // Logs the kernel library's explanation of a failed call and returns non-zero.
    int32_t report(int32_t status, const char* what) const;

    Attributes attributes_;

private:
    std::string timing_cache_id_;
    std::string metadata_;
};

// Base of an op's plugin class: clone() copies the whole op object (attributes and any state such as a tactic).
template <typename OpPlugin>
class ClonablePlugin : public Plugin
{
public:
    explicit ClonablePlugin(Attributes attributes)
        : Plugin(std::move(attributes))
    {
    }

    nvinfer1::IPluginV3* clone() noexcept override
    {
        try
        {
            return new OpPlugin(static_cast<OpPlugin const&>(*this));
        }
        catch (std::exception const& error)
        {
            log(nvinfer1::ILogger::Severity::kERROR, "%s: cannot clone the plugin: %s", getPluginName(), error.what());
            return nullptr;
        }
    }
};

class Creator : public nvinfer1::IPluginCreatorV3One
{
public:
    explicit Creator(spec::OpSpec const& spec);

    nvinfer1::IPluginV3* createPlugin(nvinfer1::AsciiChar const* name, nvinfer1::PluginFieldCollection const* fc,
        nvinfer1::TensorRTPhase phase) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    nvinfer1::AsciiChar const* getPluginName() const noexcept override;
    nvinfer1::AsciiChar const* getPluginVersion() const noexcept override;
    nvinfer1::AsciiChar const* getPluginNamespace() const noexcept override;

protected:
    virtual nvinfer1::IPluginV3* make(Attributes const& attributes) const = 0;

private:
    spec::OpSpec const& spec_;
    std::vector<nvinfer1::PluginField> fields_;
    nvinfer1::PluginFieldCollection collection_{};
};

// Creator of the op plugin class OpPlugin, constructed from its parsed attributes.
template <typename OpPlugin>
class CreatorOf final : public Creator
{
public:
    explicit CreatorOf(spec::OpSpec const& spec)
        : Creator(spec)
    {
    }

protected:
    nvinfer1::IPluginV3* make(Attributes const& attributes) const override
    {
        return new OpPlugin(attributes);
    }
};

// Static registration on dlopen/LD_PRELOAD (the REGISTER_TENSORRT_PLUGIN mechanism without a link-time reference to
// libnvinfer; see plugin_registration.cpp). One line per op plugin class at namespace scope.
void register_creator_statically(nvinfer1::IPluginCreatorInterface& creator);

template <typename OpPlugin>
struct StaticRegistrar
{
    explicit StaticRegistrar(spec::OpSpec const& spec)
    {
        static CreatorOf<OpPlugin> creator(spec);
        register_creator_statically(creator);
    }
};

#define VITRT_REGISTER_TENSORRT_PLUGIN(OpPlugin, opSpec)                                                               \
    static ::vitrt::plugin::StaticRegistrar<OpPlugin> vitrtStaticRegistrar##OpPlugin{opSpec}

} // namespace plugin
} // namespace vitrt
