package dev.mtlsproxy.config;

import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.ObjectCodec;
import com.fasterxml.jackson.core.io.IOContext;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import com.fasterxml.jackson.dataformat.yaml.YAMLParser;
import java.io.CharArrayReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.Reader;
import java.util.regex.Pattern;
import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.events.ScalarEvent;

/**
 * The YAML factory of the config loader. Its parsers hand YAML's infinities and not-a-number ({@code .inf},
 * {@code -.inf}, {@code .nan} and their case variants) on as text. Jackson's YAML parser tags them as floats it then
 * cannot read: whichever field held one, mapping stopped at it with a parse error, and every problem after it went
 * unreported. No setting of the proxy is a float, so as text they reach the field's own check like any other
 * misplaced value: a string field keeps {@code ".inf"} (as it keeps {@code "1.5"}), any other says what it expected.
 */
final class ConfigYamlFactory extends YAMLFactory {

    private static final long serialVersionUID = 1L;

    /**
     * How deeply the YAML may nest. Scan, mapping and validation each recurse once per level, on whatever thread
     * loads the file (a reload runs on a thread with the default stack): Jackson's limit of 1000 let a file nested a
     * few hundred {@code allOf} levels deep end a reload in a {@link StackOverflowError} instead of a problem. A real
     * configuration nests under ten levels; identities nesting {@code allOf}/{@code anyOf} add two per level.
     */
    static final int MAX_NESTING_DEPTH = 64;

    /**
     * How long a file may be, in characters: SnakeYAML's default limit (3 MiB of code points), which this factory
     * keeps. A configuration of thousands of identities and routes stays far below it.
     */
    static final int MAX_CODE_POINTS = new LoaderOptions().getCodePointLimit();

    ConfigYamlFactory() {
        setStreamReadConstraints(StreamReadConstraints.builder().maxNestingDepth(MAX_NESTING_DEPTH).build());
    }

    private ConfigYamlFactory(ConfigYamlFactory source, ObjectCodec codec) {
        super(source, codec);
    }

    @Override
    public YAMLFactory copy() {
        return new ConfigYamlFactory(this, null);
    }

    @Override
    protected YAMLParser _createParser(InputStream in, IOContext ctxt) throws IOException {
        return parser(ctxt, _createReader(in, null, ctxt));
    }

    @Override
    protected YAMLParser _createParser(Reader r, IOContext ctxt) {
        return parser(ctxt, r);
    }

    @Override
    protected YAMLParser _createParser(char[] data, int offset, int len, IOContext ctxt, boolean recyclable) {
        return parser(ctxt, new CharArrayReader(data, offset, len));
    }

    @Override
    protected YAMLParser _createParser(byte[] data, int offset, int len, IOContext ctxt) throws IOException {
        return parser(ctxt, _createReader(data, offset, len, null, ctxt));
    }

    private YAMLParser parser(IOContext ctxt, Reader reader) {
        return new SpecialFloatsAsText(ctxt, _parserFeatures, _yamlParserFeatures, _loaderOptions, _objectCodec,
                reader);
    }

    private static final class SpecialFloatsAsText extends YAMLParser {

        /** The YAML 1.1 and 1.2 spellings of infinity and NaN. */
        private static final Pattern SPECIAL_FLOAT =
                Pattern.compile("[-+]?\\.(?:inf|Inf|INF)|\\.(?:nan|NaN|NAN)");

        SpecialFloatsAsText(IOContext ctxt, int parserFeatures, int yamlFeatures, LoaderOptions options,
                ObjectCodec codec, Reader reader) {
            super(ctxt, parserFeatures, yamlFeatures, options, codec, reader);
        }

        @Override
        protected JsonToken _decodeScalar(ScalarEvent scalar) throws IOException {
            JsonToken token = super._decodeScalar(scalar);
            return token == JsonToken.VALUE_NUMBER_FLOAT && SPECIAL_FLOAT.matcher(_textValue).matches()
                    ? JsonToken.VALUE_STRING
                    : token;
        }
    }
}
