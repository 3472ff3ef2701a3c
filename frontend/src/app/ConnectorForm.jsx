// One connector form (the document from /api/forms/…) in RJSF 6 with Ajv2020, as every engine
// front end renders it: the host's shared settings, the page's own buttons.
import Form from '@rjsf/core';
import { customizeValidator } from '@rjsf/validator-ajv8';
import Ajv2020 from 'ajv/dist/2020';
import { forwardRef } from 'react';
import { formProps } from '../host.jsx';

const validator = customizeValidator({ AjvClass: Ajv2020 });

// The title a person sees for a field at RJSF's property path (".data.Quantity", ".select.1").
function titleAt(schema, property) {
  let node = schema;
  let title = '';
  for (const part of property.split('.').filter(Boolean)) {
    node = /^\d+$/.test(part) ? node?.items : node?.properties?.[part];
    title = node?.title ?? (/^\d+$/.test(part) ? `${title} ${Number(part) + 1}` : part);
  }
  return title;
}

// RJSF's list of errors above the form. An error the connector returned (a field it refused
// after the form was sent) reads ".order_by Dat is not a field..." there: it says the field's
// title instead, as the form's own errors do.
function ErrorList({ errors, schema }) {
  return (
    <div className="panel panel-danger errors">
      <div className="panel-heading"><h3 className="panel-title">Errors</h3></div>
      <ul className="list-group">
        {errors.map((error, index) => {
          const raw = error.property && error.stack === `${error.property} ${error.message}`;
          return (
            <li key={index} className="list-group-item text-danger">
              {raw ? `${titleAt(schema, error.property)}: ${error.message}` : error.stack}
            </li>
          );
        })}
      </ul>
    </div>
  );
}

export const ConnectorForm = forwardRef(function ConnectorForm(
  { form, formData, onChange, onSubmit, onError, extra, children },
  ref,
) {
  return (
    <Form
      ref={ref}
      {...formProps(form)}
      validator={validator}
      formData={formData}
      extraErrors={extra}
      templates={{ ErrorListTemplate: ErrorList }}
      onChange={(event) => onChange?.(event.formData)}
      onSubmit={(event) => onSubmit(event.formData)}
      onError={() => onError?.()}
    >
      {children}
    </Form>
  );
});
